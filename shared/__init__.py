"""Code that both the API and the workers import: settings, wire schemas, job store, errors."""
