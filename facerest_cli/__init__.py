"""The ``facerest`` command: enroll a folder of people, recognize a photo, verify two photos."""
