"""The import paths of the RQ jobs, by which queued jobs name the function to run."""

TICK_JOB = "usage_entrypoints.jobs.tick_job"
SYNC_JOB = "usage_entrypoints.jobs.sync_job"
SYNC_PANEL_JOB = "usage_entrypoints.jobs.sync_panel_job"
FINISH_SYNC_JOB = "usage_entrypoints.jobs.finish_sync_job"
