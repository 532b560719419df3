# Before the first job and while jobs run: can the Slurm executor still see its jobs?
# (segscale.slurm_guard: a failed sacct/squeue poll makes plugin 2.8 forget its jobs and
# snakemake wait forever.) Only the main snakemake process of a `--executor slurm` run checks:
# dry runs, other executors and the jobs themselves (--no-hooks) skip it.
import shutil

from snakemake.exceptions import WorkflowError

from segscale import slurm_guard


def start_slurm_guard():
    plugin = workflow.executor_plugin
    if plugin is None or plugin.name != "slurm":
        return
    try:
        interval = slurm_guard.guard_interval()
    except ValueError as exc:
        raise WorkflowError(str(exc))
    if not interval:
        return
    settings = workflow.executor_settings
    job_age = slurm_guard.min_job_age()
    command = slurm_guard.effective_status_command(
        getattr(settings, "status_command", None),
        job_age,
        getattr(settings, "init_seconds_before_status_checks", 40),
        shutil.which("sacct") is not None,
    )
    problem = slurm_guard.preflight(command, job_age)
    if problem:
        raise WorkflowError(problem)
    scheduler = workflow.scheduler

    def stop_run(problem):
        run_uuid = getattr(getattr(scheduler, "_executor", None), "run_uuid", None)
        message = slurm_guard.running_failure(
            command, problem, slurm_guard.queued_jobs(run_uuid), run_uuid
        )
        scheduler.executor_error_callback(WorkflowError(message))

    def check():
        return slurm_guard.probe(command)

    slurm_guard.Watchdog(check, stop_run, interval).start()


onstart:
    start_slurm_guard()
