"""Web pages of the scheduler: jobs (`/jobs/`) and clusters (`/clusters/`)."""
