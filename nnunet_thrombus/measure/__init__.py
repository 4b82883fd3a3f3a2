"""Thrombus measurements: pure functions of numpy arrays plus voxel geometry.

Array convention for the whole package: volumes are numpy arrays in (z, y, x) order, exactly as
``SimpleITK.GetArrayFromImage`` returns them, and ``spacing`` is given in the same (z, y, x) order in
mm (the reverse of ``image.GetSpacing()``). Patient-space quantities (origin, direction, centroids)
keep ITK's LPS (x, y, z) order. Nothing here imports torch.
"""
from nnunet_thrombus.measure.components import measure_components, measure_components_from_images
from nnunet_thrombus.measure.density import density_hu, perviousness_hu, relative_density
from nnunet_thrombus.measure.length import length_mm, mean_diameter_mm
from nnunet_thrombus.measure.location import (ImageGeometry, SiteThresholds, centroid_mm, classify_site,
                                              side)
from nnunet_thrombus.measure.volume import volume_mm3

__all__ = ["volume_mm3", "length_mm", "mean_diameter_mm", "density_hu", "relative_density", "perviousness_hu",
           "ImageGeometry", "SiteThresholds", "centroid_mm", "side", "classify_site",
           "measure_components", "measure_components_from_images"]
