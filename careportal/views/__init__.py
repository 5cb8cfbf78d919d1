"""Care Portal views, one module per area: ``shell`` (home), ``inbox``, ``patients``."""
