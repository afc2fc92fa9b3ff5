import pytest
import torch

from service.core.noise import Chunk, Phase, chunk_seed, draw_noise, image_digest, plan_phase

SECRET = b"test-secret-0123456789"
PARAMS = {"denoiser": "none@identity", "classifier": "c@1", "rng": "torch-cpu"}
SEEDED = {**PARAMS, "sigma": 0.25}


def test_plan_covers_the_phase_in_fixed_size_chunks() -> None:
    chunks = plan_phase(SECRET, "d", 0.25, PARAMS, Phase.ESTIMATION, 2500, chunk_size=1000)
    assert [c.size for c in chunks] == [1000, 1000, 500]
    assert [c.index for c in chunks] == [0, 1, 2]
    assert plan_phase(SECRET, "d", 0.25, PARAMS, Phase.SELECTION, 0) == []


def test_chunk_seeds_do_not_depend_on_the_number_of_samples() -> None:
    small = plan_phase(SECRET, "d", 0.25, PARAMS, Phase.ESTIMATION, 2000, chunk_size=1000)
    large = plan_phase(SECRET, "d", 0.25, PARAMS, Phase.ESTIMATION, 10_000, chunk_size=1000)
    assert large[:2] == small


def test_every_part_of_the_message_changes_the_seed() -> None:
    base = chunk_seed(SECRET, "digest", SEEDED, Phase.ESTIMATION, 0)
    variants = [
        chunk_seed(b"another-secret-000000", "digest", SEEDED, Phase.ESTIMATION, 0),
        chunk_seed(SECRET, "other-digest", SEEDED, Phase.ESTIMATION, 0),
        chunk_seed(SECRET, "digest", {**SEEDED, "sigma": 0.5}, Phase.ESTIMATION, 0),
        chunk_seed(SECRET, "digest", SEEDED, Phase.SELECTION, 0),
        chunk_seed(SECRET, "digest", SEEDED, Phase.ESTIMATION, 1),
    ]
    assert len({base, *variants}) == 6
    assert all(0 <= seed < 2**63 for seed in variants)


def test_chunk_size_is_part_of_the_stream() -> None:
    a = plan_phase(SECRET, "d", 0.25, PARAMS, Phase.ESTIMATION, 10, chunk_size=10)
    b = plan_phase(SECRET, "d", 0.25, PARAMS, Phase.ESTIMATION, 10, chunk_size=20)
    assert a[0].seed != b[0].seed


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        chunk_seed(b"", "d", SEEDED, Phase.ESTIMATION, 0)


def test_noise_is_reproducible_from_the_seed_and_has_the_asked_scale() -> None:
    chunk = Chunk(phase=Phase.ESTIMATION, index=0, size=4000, seed=12345, sigma=0.5, digest="d")
    first = draw_noise(chunk, (3, 8, 8))
    again = draw_noise(chunk, (3, 8, 8))
    assert first.dtype == torch.float32 and first.shape == (4000, 3, 8, 8)
    assert torch.equal(first, again)
    assert first.std().item() == pytest.approx(0.5, rel=0.01)
    assert abs(first.mean().item()) < 0.005


def test_selection_and_estimation_noise_are_independent() -> None:
    digest = image_digest(torch.zeros(3, 8, 8))
    selection = plan_phase(SECRET, digest, 1.0, PARAMS, Phase.SELECTION, 1000)[0]
    estimation = plan_phase(SECRET, digest, 1.0, PARAMS, Phase.ESTIMATION, 1000)[0]
    a = draw_noise(selection, (3, 8, 8)).flatten()
    b = draw_noise(estimation, (3, 8, 8)).flatten()
    assert not torch.equal(a, b)
    correlation = torch.corrcoef(torch.stack([a, b]))[0, 1].item()
    assert abs(correlation) < 0.01


def test_image_digest_sees_every_pixel_and_the_shape() -> None:
    image = torch.rand(3, 4, 4)
    changed = image.clone()
    changed[2, 3, 3] += 1e-6
    assert image_digest(image) == image_digest(image.clone())
    assert image_digest(image) != image_digest(changed)
    assert image_digest(image) != image_digest(image.reshape(3, 2, 8))


def test_sigma_is_part_of_the_seed_and_rides_in_the_chunk() -> None:
    low = plan_phase(SECRET, "d", 0.25, PARAMS, Phase.ESTIMATION, 10)[0]
    high = plan_phase(SECRET, "d", 0.5, PARAMS, Phase.ESTIMATION, 10)[0]
    assert (low.sigma, high.sigma, low.digest) == (0.25, 0.5, "d")
    assert low.seed != high.seed
    # The same seed as before sigma moved into the chunk: certificates do not change.
    assert low.seed == chunk_seed(SECRET, "d", {**SEEDED, "chunk_size": 1000}, low.phase, 0)
