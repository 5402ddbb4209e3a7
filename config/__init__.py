"""The files the daemon ships as defaults (rules.toml, staff.toml, intake.example.toml, intake.service),
installed as the package `intake_defaults` (see intake/resources.py). `intake init --config-dir DIR`
writes editable copies of them; files beside the user's config win over these."""
