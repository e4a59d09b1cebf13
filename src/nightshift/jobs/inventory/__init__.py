"""The inventory job: `job.run(ctx)` and the modules it is made of."""
