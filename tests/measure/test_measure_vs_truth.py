"""measure/ against the synthetic generator's recorded truth, 30 clots of every site (SYNTHETIC).

The generator and the measurements share this package, so agreement here is consistency, not proof: the
closed-form checks (a cylinder's pi r^2 L, its length and calibre, a piecewise-constant HU field) are in
test_measure_analytic_truth.py and test_measure_length_volume.py. The targets are written here, not read from the
package: volume 2%, length 10% (every case), NCCT core density and perviousness 3 HU (every case, same core
definition), side 100%, site >= 95%. See docs/metrics.md for the table and the command that makes it.
"""
import pytest

from nnunet_thrombus.synthetic.measure_check import error_table, errors, misses, run_check
from nnunet_thrombus.synthetic.phantom import _patient, clot_volume_mm3

SITES = ("ICA", "M1", "M2", "ACA")
N_PER_SITE = 30
#: relative errors (volume, length), absolute HU (density, perviousness)
TARGETS = {"volume_mm3": 0.02, "length_mm": 0.10, "density_hu": 3.0, "perviousness_hu": 3.0}
#: the length target is missed by two ICA clots that span the carotid T, where the generator's ICA -> M1
#: centreline still hooks within the millimetre next to the junction (bend radius a quarter of the lumen radius):
#: a generator limit, not a measurement one (docs/metrics.md). Listed so a fix, or a new miss, fails the test.
KNOWN_LENGTH_MISSES = {"SYN_0026", "SYN_0027"}


@pytest.fixture(scope="module")
def rows():
    return run_check(N_PER_SITE)


@pytest.fixture(scope="module")
def table(rows):
    return error_table(rows, "fine")


def test_thirty_clots_of_every_site(rows):
    assert [sum(r["site"] == s for r in rows) for s in SITES] == [N_PER_SITE] * 4
    assert all(r["truth"]["site"] == r["site"] for r in rows)


@pytest.mark.parametrize("quantity", ["volume_mm3", "density_hu", "perviousness_hu"])
def test_every_case_within_target(rows, table, quantity):
    worst = max(errors(r, "fine")[quantity] for r in rows)
    assert worst <= TARGETS[quantity], (quantity, worst, misses(rows))
    assert table["all"][quantity]["max"] == pytest.approx(worst)


def test_length_within_10_percent_but_for_the_listed_carotid_t_clots(rows, table):
    over = {r["case"] for r in rows if errors(r, "fine")["length_mm"] > TARGETS["length_mm"]}
    assert over == KNOWN_LENGTH_MISSES, misses(rows)
    assert all(table[s]["length_mm"]["max"] <= TARGETS["length_mm"] for s in ("M1", "M2", "ACA"))
    assert table["ICA"]["length_mm"]["median"] < 0.05


def test_side_always_right_and_site_at_least_95_percent(rows, table):
    assert table["all"]["side"] == 1.0, misses(rows)
    assert table["all"]["site"] >= 0.95, misses(rows)
    assert min(table[s]["site"] for s in SITES) >= 0.9


def test_preset_scans_show_what_voxel_size_and_blur_cost(rows):
    # the same clots on the 1.5 mm tiny scans (noise, blur): the errors the targets would have at that voxel
    # size; kept as a check that the fine crops, not luck, make the targets hold
    coarse = error_table(rows, "preset")["all"]
    assert coarse["volume_mm3"]["max"] > 5 * TARGETS["volume_mm3"]
    assert coarse["perviousness_hu"]["median"] > 5 * TARGETS["perviousness_hu"]


@pytest.mark.parametrize("seed,site", [(27, "ICA"), (3, "M2")])
def test_truth_volume_is_the_rendered_clot(seed, site):
    _, _, _, scene, _, _ = _patient(seed, "paper", {"site": site})
    v = clot_volume_mm3(scene)
    assert v == pytest.approx(clot_volume_mm3(scene, step_fraction=0.06), rel=0.003)
    # same clot as the centreline integral of pi r^2, up to what that misses where pieces meet (end caps, bends)
    assert v == pytest.approx(scene.occlusion.volume_mm3(scene.vessels), rel=0.06)
