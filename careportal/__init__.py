"""Care Portal: patients and their care teams, the access rule, and the pages care-team members use."""
