"""The fine stage's final validation with the global coarse context.

nnU-Net's ``nnUNetTrainer.perform_actual_validation`` builds a plain ``nnUNetPredictor`` itself (nnU-Net 2.8 has
no hook for the predictor class), whose windows would reach a global-context network without the whole-case coarse
features (the network stops with ``MissingCoarseContextError``). :func:`validate_with_coarse_context` follows that
method step by step with :class:`~nnunet_thrombus.inference.roi_predictor.ROIRestrictedPredictor` instead (no ROI:
nnU-Net's full sliding window, after one whole-case coarse pass per case): each held-out case of the fold is
predicted and exported by nnU-Net's ``export_prediction_from_logits`` in a process pool into
``fold_k/validation``, then scored by nnU-Net's ``compute_metrics_on_folder`` into ``validation/summary.json``, and
the mean Dice is logged as nnU-Net logs it. The fine stage is the cascade's last, so there is no next stage to
write for. Written against nnunetv2 2.8.x.
"""
from __future__ import annotations

import multiprocessing
import warnings
from pathlib import Path
from time import sleep

import numpy as np


def validate_with_coarse_context(trainer, save_probabilities: bool = False) -> None:
    """Final validation of ``trainer`` (an nnUNetTrainer whose fine network samples a global coarse context)."""
    import torch
    from nnunetv2.configuration import default_num_processes
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder
    from nnunetv2.inference.export_prediction import export_prediction_from_logits
    from nnunetv2.inference.sliding_window_prediction import compute_gaussian
    from nnunetv2.utilities.file_path_utilities import check_workers_alive_and_busy
    from nnunetv2.utilities.label_handling.label_handling import convert_labelmap_to_one_hot
    from torch import distributed as dist

    from nnunet_thrombus.inference.roi_predictor import ROIRestrictedPredictor

    t = trainer
    if t.configuration_manager.next_stage_names:
        raise ValueError(f"{t.configuration_name} has a next stage; the global coarse context belongs to the last "
                         f"stage of the cascade")
    t.set_deep_supervision_enabled(False)
    t.network.eval()
    predictor = ROIRestrictedPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True,
                                       perform_everything_on_device=True, device=t.device, verbose=False,
                                       verbose_preprocessing=False, allow_tqdm=False)
    predictor.manual_initialization(t.network, t.plans_manager, t.configuration_manager, None, t.dataset_json,
                                    type(t).__name__, t.inference_allowed_mirroring_axes)
    out_dir = Path(t.output_folder) / "validation"
    out_dir.mkdir(parents=True, exist_ok=True)
    _, keys = t.do_split()
    world = dist.get_world_size() if t.is_ddp else 1
    last_barrier = len(keys) // world - 1
    keys = keys[t.local_rank::world]  # each GPU its share, as nnU-Net splits them
    cases = t.dataset_class(t.preprocessed_dataset_folder, keys,
                            folder_with_segs_from_previous_stage=t.folder_with_segs_from_previous_stage)
    with multiprocessing.get_context("spawn").Pool(default_num_processes) as pool:
        workers, pending = list(pool._pool), []
        for i, key in enumerate(cases.identifiers):
            while check_workers_alive_and_busy(pool, workers, pending, allowed_num_queued=2):
                sleep(0.1)
            data, _, seg_prev, properties = cases.load_case(key)
            data = data[:]
            if t.is_cascaded:
                data = np.vstack((data, convert_labelmap_to_one_hot(seg_prev[:], t.label_manager.foreground_labels,
                                                                     output_dtype=data.dtype)))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a read-only array: torch warns, the data is only read
                data = torch.from_numpy(data)
            t.print_to_log_file(f"predicting {key}, shape {tuple(data.shape)}, rank {t.local_rank}")
            logits = predictor.predict_sliding_window_return_logits(data).cpu()
            pending.append(pool.starmap_async(export_prediction_from_logits, (
                (logits, properties, t.configuration_manager, t.plans_manager, t.dataset_json, str(out_dir / key),
                 save_probabilities),)))
            if t.is_ddp and i < last_barrier and (i + 1) % 20 == 0:  # keep the GPUs in step (nccl timeouts)
                dist.barrier()
        for result in pending:
            result.get()
    if t.is_ddp:
        dist.barrier()
    if t.local_rank == 0:
        labels = t.label_manager
        metrics = compute_metrics_on_folder(
            str(Path(t.preprocessed_dataset_folder_base) / "gt_segmentations"), str(out_dir),
            str(out_dir / "summary.json"), t.plans_manager.image_reader_writer_class(), t.dataset_json["file_ending"],
            labels.foreground_regions if labels.has_regions else labels.foreground_labels, labels.ignore_label,
            chill=True, num_processes=default_num_processes * world)
        for label in metrics["mean"]:
            t.logger.log_summary(f"final_val/class_{label}_dice", metrics["mean"][label]["Dice"])
        t.logger.log_summary("final_val/foreground_dice", metrics["foreground_mean"]["Dice"])
        t.print_to_log_file("Validation complete", also_print_to_console=True)
        t.print_to_log_file("Mean Validation Dice: ", metrics["foreground_mean"]["Dice"], also_print_to_console=True)
    t.set_deep_supervision_enabled(True)
    compute_gaussian.cache_clear()
