"""CFP (Celebrities in Frontal-Profile, Sengupta et al., WACV 2016) from a local copy of the
GitHub repository zhangjunh/DR-GAN-by-pytorch, which carries the whole data set in its
``cfp-dataset/`` folder. Nothing of it is committed here: this rebuilds it outside the repository.

    git clone https://github.com/zhangjunh/DR-GAN-by-pytorch /tmp/drgan    # or a bare mirror
    python -m bench.cfp /tmp/drgan [--out /work/data/cfp]

SOURCE is a checkout (a folder with ``cfp-dataset/`` in it) or a git directory, bare or not (read
with ``git archive HEAD``, no work tree needed). OUT defaults to $FACEREST_CFP_DIR or
/work/data/cfp. OUT gets ``cfp-dataset/`` exactly as the repository has it:

    OUT/Data/Images/{train,test}/<id>/frontal/01.jpg ... 10.jpg   500 people, id 001 ... 500
    OUT/Data/Images/{train,test}/<id>/profile/01.jpg ... 04.jpg   (2,000 profile photos in all)
    OUT/Data/Fiducials/<id>/{frontal,profile}/NN.txt   30 hand-marked points per photo, "x,y" lines
    OUT/Data/list_name.txt                             the people's names, line n is id n
    OUT/Protocol/                                      CFP's 10-fold FF and FP verification pairs

``train/`` (people 001-450) and ``test/`` (451-500) are the repository's own split, not CFP's:
``photos`` below ignores it. (Protocol/Pair_list_*.txt name photos without that folder.)
The photos are tight crops, the face filling most of the frame; 28 frontal photos are
byte-identical copies of another photo of the same person.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bench.mirror import extract_folder

PEOPLE = 500
PER_PERSON = {"frontal": 10, "profile": 4}
PREFIX = "cfp-dataset"
DEFAULT_OUT = Path(os.environ.get("FACEREST_CFP_DIR", "/work/data/cfp"))

Pose = Literal["frontal", "profile"]


@dataclass(frozen=True, slots=True)
class Photo:
    person: int  # 1 ... 500, line ``person`` of Data/list_name.txt
    number: int  # 1 ... 10 (frontal) or 1 ... 4 (profile)
    path: Path


def photos(root: Path, pose: Pose) -> list[Photo]:
    """Every photo of one pose under ``root`` (OUT above), by person then number."""
    found = [
        Photo(int(path.parent.parent.name), int(path.stem), path)
        for path in root.glob(f"Data/Images/*/*/{pose}/*.jpg")
    ]
    return sorted(found, key=lambda photo: (photo.person, photo.number))


def check(root: Path) -> None:
    """Fail unless ``root`` holds every person's frontal and profile photos."""
    for pose in ("frontal", "profile"):
        found = len(photos(root, pose))
        if found != PEOPLE * PER_PERSON[pose]:
            raise SystemExit(f"{root}: {found} {pose} photos, expected {PEOPLE * PER_PERSON[pose]}")


def extract(source: Path, out: Path) -> None:
    """Write the data set under ``out`` from the copy at ``source``."""
    extract_folder(source, PREFIX, out)
    check(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("source", type=Path, help="a checkout or git directory of DR-GAN-by-pytorch")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if args.out.is_dir() and any(args.out.iterdir()):
        check(args.out)  # a copy already there (another run, another engineer): reuse, never overwrite
        print(f"{args.out} already holds CFP; left as it is")
        return
    extract(args.source, args.out)
    print(f"CFP under {args.out}: {PEOPLE} people, frontal and profile photos")


if __name__ == "__main__":
    main()
