"""Predict a cohort on a Ray cluster: cases are split into parts, one Ray task per part.

Each task builds its ``ThrombusCasePredictor`` once from the ``ModelOptions`` and predicts its part
(``BatchOptions.num_parts`` / ``part_id``, the same split as nnU-Net's ``--num_parts``), so it writes the same per-case
files a serial run writes; the driver then rebuilds ``summary.csv`` from every case's ``report.json``. Tasks ask
Ray for ``gpus_per_task`` GPUs (0 on CPU) and ``cpus_per_task`` CPUs. Needs Ray:
``pip install 'nnunet_thrombus[distributed]'``.

Logging: each task configures logging in its worker at the driver's level (:func:`_run_part`), and a Ray started here
forwards the workers' stderr to the driver (``log_to_driver``), so per-case lines and errors of every part show in
the driver's output, prefixed by Ray with the worker's pid; ``-q`` on the driver keeps the workers to errors too.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from nnunet_thrombus.console import configure_logging
from nnunet_thrombus.inference.options import BatchOptions, ModelOptions, OutputOptions
from nnunet_thrombus.inference.pipeline import ThrombusCasePredictor, predict_cases, rebuild_tables
from nnunet_thrombus.model_folder import dataset_results_folder

logger = logging.getLogger(__name__)

#: seconds the driver waits after the last task for Ray to forward the workers' last log lines
LOG_FORWARD_GRACE_S = 2.0


def _run_part(part_id: int, num_parts: int, inputs, out_dir: str, model, outputs: OutputOptions,
              batch: BatchOptions, log_level: int = logging.WARNING) -> dict:
    """One Ray task: this worker logs at the driver's ``log_level`` to its stderr (which Ray forwards to the
    driver), then predicts part ``part_id`` of ``num_parts``."""
    configure_logging(log_level)
    logger.info(f"Ray part {part_id + 1}/{num_parts} started")
    return predict_cases(inputs, out_dir, model, outputs, dataclasses.replace(batch, num_parts=num_parts,
                                                                              part_id=part_id))


def predict_cases_ray(inputs, out_dir, model: ModelOptions | ThrombusCasePredictor,
                      outputs: OutputOptions | None = None, batch: BatchOptions | None = None, *,
                      ray_address: str | None = "auto", num_parts: int | None = None, gpus_per_task: float = 0.0,
                      cpus_per_task: float = 1.0) -> dict:
    """Run ``predict_cases(inputs, out_dir, model, outputs, batch)`` as ``num_parts`` Ray tasks (default: one per CPU
    slot of the cluster); ``batch``'s own ``num_parts`` / ``part_id`` are replaced by the task's.

    ``model``: ``ModelOptions`` (each task loads the model once) or a ready ``ThrombusCasePredictor`` (sent to every
    task). ``ray_address``: ``"auto"`` joins a running cluster, ``None`` starts a local one. Returns the merged result
    dict.
    """
    try:
        import ray  # optional dependency (nnunet_thrombus[distributed]), loaded only for a Ray run
    except ImportError as exc:
        raise ImportError("the Ray backend needs ray: pip install 'nnunet_thrombus[distributed]'") from exc
    outputs, batch = outputs or OutputOptions(), batch or BatchOptions()
    log_level = logging.getLogger("nnunet_thrombus").getEffectiveLevel()  # the driver's; WARNING if unconfigured
    if isinstance(model, ModelOptions) and model.dataset is not None and model.model is None:
        # the tasks get the model's folder, found here under nnUNet_results, so they need no nnU-Net variables
        model = dataclasses.replace(model, model=dataset_results_folder(model.dataset), dataset=None)

    started = False
    if not ray.is_initialized():
        ray.init(address=ray_address, include_dashboard=False, log_to_driver=True,
                 logging_level=max(log_level, logging.WARNING),
                 **({} if ray_address else {"num_cpus": max(1, int(num_parts or 2) * int(cpus_per_task))}))
        started = True
    try:
        if num_parts is None:
            num_parts = max(1, int(ray.cluster_resources().get("CPU", 1) // max(cpus_per_task, 1e-6)))
        task = ray.remote(num_cpus=cpus_per_task, num_gpus=gpus_per_task)(_run_part)
        refs = [task.remote(k, num_parts, inputs, str(out_dir), model, outputs, batch, log_level)
                for k in range(num_parts)]
        parts = ray.get(refs)
        # Ray forwards worker output asynchronously (its log monitor polls the workers' files): give the last
        # records of the last part time to reach the driver before the cluster goes away
        time.sleep(LOG_FORWARD_GRACE_S)
    finally:
        if started:
            ray.shutdown()
    merged = {"done": [], "skipped": [], "failed": {}, "out_dir": str(out_dir), "timings_s": {}, "parts": num_parts}
    for part in parts:
        merged["done"] += part["done"]
        merged["skipped"] += part["skipped"]
        merged["failed"].update(part["failed"])
        merged["timings_s"].update(part["timings_s"])
    rebuild_tables(Path(out_dir), merged["failed"])
    return merged
