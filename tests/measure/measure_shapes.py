"""Analytic test shapes voxelised on anisotropic (z, y, x) grids (spacing in mm)."""
from __future__ import annotations

import numpy as np


def _grid(spacing, shape_mm, shift_vox=(0.37, 0.21, 0.13)):
    sp = np.asarray(spacing, float)
    shape = np.ceil(np.asarray(shape_mm) / sp).astype(int)
    # centre off the voxel grid so no face sits exactly on voxel centres
    centre = (shape / 2.0 + np.asarray(shift_vox)) * sp
    axes = [np.arange(n) * s - c for n, s, c in zip(shape, sp, centre)]
    return np.meshgrid(*axes, indexing="ij")


def cylinder(spacing, length, radius, axis=(1.0, 0.0, 0.0), shape_mm=(40, 40, 40)):
    """Straight cylinder along ``axis`` ((z, y, x) direction); returns (mask, volume_mm3, length_mm)."""
    z, y, x = _grid(spacing, shape_mm)
    d = np.asarray(axis, float) / np.linalg.norm(axis)
    t = z * d[0] + y * d[1] + x * d[2]
    r2 = z ** 2 + y ** 2 + x ** 2 - t ** 2
    mask = (np.abs(t) <= length / 2) & (r2 <= radius ** 2)
    return mask, np.pi * radius ** 2 * length, float(length)


def torus_arc(spacing, bend_radius, radius, angle, tilt_deg=30.0, shape_mm=(44, 60, 60)):
    """Bent tube: arc of a torus (centre-line radius ``bend_radius`` mm, tube radius ``radius`` mm,
    opening ``angle`` rad) in a plane tilted by ``tilt_deg`` about y; returns (mask, volume, length)."""
    z, y, x = _grid(spacing, shape_mm)
    a = np.deg2rad(tilt_deg)
    u = x * np.cos(a) + z * np.sin(a)
    w = -x * np.sin(a) + z * np.cos(a)
    rho = np.hypot(u, y)
    phi = np.arctan2(y, u)
    mask = ((rho - bend_radius) ** 2 + w ** 2 <= radius ** 2) & (phi >= 0.1) & (phi <= 0.1 + angle)
    return mask, np.pi * radius ** 2 * bend_radius * angle, bend_radius * angle


def sphere(shape, spacing, centre_mm, radius_mm):
    """Ball of ``radius_mm`` at ``centre_mm`` ((z, y, x) mm from the first voxel centre)."""
    sp = np.asarray(spacing, float)
    axes = [np.arange(n) * s - c for n, s, c in zip(shape, sp, centre_mm)]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    return z ** 2 + y ** 2 + x ** 2 <= radius_mm ** 2
