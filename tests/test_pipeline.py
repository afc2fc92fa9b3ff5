import asyncio
import math
import multiprocessing

import numpy as np
import pytest
import torch
from scipy.stats import norm

from denoisers.classifiers import cifar_resnet
from denoisers.registry import LoadedModel, load_denoiser
from service.core.certifier import Certifier, chunk_size_for
from service.core.noise import Chunk, Phase, image_digest, plan_phase
from service.core.results import Certificate, CertifyParams, PredictParams
from service.core.votes import InMemoryVoteStore
from service.execution.devices import fixed_size, run_fixed_size
from service.execution.local import LocalSampler
from tests.models import no_denoiser, random_conv_classifier, threshold_classifier

SECRET = b"pipeline-test-secret"


def _wrong_fraction(p_a: float, sigma: float, n0: int, n: int, alpha: float, runs: int) -> float:
    """Fraction of certificates that are wrong: another class than 'a', or a radius too large."""
    centre = 0.5
    worker = LocalSampler(no_denoiser(), threshold_classifier(p_a, centre, sigma), device="cpu")
    image = torch.full((3, 1, 1), centre)
    true_radius = sigma * float(norm.ppf(p_a))
    params = CertifyParams(sigma=sigma, n0=n0, n=n, alpha=alpha)
    wrong = 0
    for run in range(runs):
        certificate = asyncio.run(
            Certifier(worker, SECRET + str(run).encode()).certify(image, params)
        )
        if not certificate.abstained and (
            certificate.label != "a" or certificate.radius > true_radius
        ):
            wrong += 1
    return wrong / runs


@pytest.mark.parametrize(("p_a", "n"), [(0.9, 100), (0.7, 1000)])
@pytest.mark.slow
def test_wrong_certificates_stay_within_alpha(p_a: float, n: int) -> None:
    """Monte-Carlo validity of the whole pipeline: seeds, noise, phases, counts, bound."""
    alpha, runs = 0.01, 2000
    wrong = _wrong_fraction(p_a, sigma=0.25, n0=10, n=n, alpha=alpha, runs=runs)
    assert wrong <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


def test_the_validity_check_catches_an_overconfident_bound() -> None:
    """The same harness fails a certifier whose bound holds only at alpha = 0.3, not 0.01."""
    alpha, runs = 0.01, 500
    wrong = _wrong_fraction(0.9, sigma=0.25, n0=10, n=100, alpha=0.3, runs=runs)
    assert wrong > alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


@pytest.fixture(scope="module")
def conv_classifier() -> LoadedModel:
    return random_conv_classifier()


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(3))


def _certificate_counts(worker: LocalSampler, image: torch.Tensor, secret: bytes) -> list:
    params = CertifyParams(sigma=0.5, n0=30, n=2100)
    certificate = asyncio.run(Certifier(worker, secret).certify(image, params))
    return [(c.key, c.count) for c in certificate.top_counts]


def test_same_secret_and_request_give_identical_counts(conv_classifier, image) -> None:
    worker = LocalSampler(no_denoiser(), conv_classifier, device="cpu")
    assert _certificate_counts(worker, image, SECRET) == _certificate_counts(worker, image, SECRET)


def test_another_secret_draws_other_noise(conv_classifier, image) -> None:
    worker = LocalSampler(no_denoiser(), conv_classifier, device="cpu")
    assert _certificate_counts(worker, image, SECRET) != _certificate_counts(
        worker, image, b"a-different-secret"
    )


def test_batch_size_leaves_the_counts_unchanged(conv_classifier, image) -> None:
    small = LocalSampler(no_denoiser(), conv_classifier, device="cpu", batch_size=37)
    large = LocalSampler(no_denoiser(), conv_classifier, device="cpu", batch_size=1000)
    assert _certificate_counts(small, image, SECRET) == _certificate_counts(large, image, SECRET)


def _plan(image: torch.Tensor) -> list:
    params = {"rng": "torch-cpu"}
    return plan_phase(
        SECRET, image_digest(image), 0.5, params, Phase.ESTIMATION, 2500, chunk_size=500
    )


def _count_in_this_process(classifier: LoadedModel, image: torch.Tensor, order: str) -> np.ndarray:
    worker = LocalSampler(no_denoiser(), classifier, device="cpu")
    chunks = _plan(image)
    chunks = chunks[::-1] if order == "reversed" else chunks
    return sum(worker.count_chunk(image, chunk) for chunk in chunks)


def test_chunk_order_leaves_the_counts_unchanged(conv_classifier, image) -> None:
    forward = _count_in_this_process(conv_classifier, image, "forward")
    backward = _count_in_this_process(conv_classifier, image, "reversed")
    np.testing.assert_array_equal(forward, backward)
    assert forward.sum() == 2500


@pytest.mark.subprocess
@pytest.mark.slow
def test_another_process_computes_the_same_counts(conv_classifier, image) -> None:
    here = _count_in_this_process(conv_classifier, image, "forward")
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        there = pool.apply(_count_in_this_process, (conv_classifier, image, "forward"))
    np.testing.assert_array_equal(here, there)


def test_clean_candidate_spends_one_query_instead_of_n0(conv_classifier, image) -> None:
    worker = LocalSampler(no_denoiser(), conv_classifier, device="cpu")
    params = CertifyParams(sigma=0.12, n0=0, n=200, candidate="clean")
    certificate = asyncio.run(Certifier(worker, SECRET).certify(image, params))
    assert certificate.queries.total == 201 and certificate.n0 == 0
    assert certificate.candidate == conv_classifier.classes[worker.clean_label(image)]


def test_noisy_candidate_needs_selection_samples() -> None:
    with pytest.raises(ValueError, match="n0"):
        CertifyParams(n0=0, candidate="noisy")


def test_predict_abstains_when_two_classes_split_the_vote() -> None:
    worker = LocalSampler(
        no_denoiser(), threshold_classifier(0.5, 0.5, 0.25, p_b=0.5), device="cpu"
    )
    result = asyncio.run(
        Certifier(worker, SECRET).predict(
            torch.full((3, 1, 1), 0.5), PredictParams(sigma=0.25, n=1000, alpha=0.001)
        )
    )
    assert result.abstained and result.label is None
    assert {c.label for c in result.top_counts} >= {"a", "b"}


def test_progress_reports_every_planned_sample(conv_classifier, image) -> None:
    worker = LocalSampler(no_denoiser(), conv_classifier, device="cpu")
    seen: list[tuple[int, int]] = []
    asyncio.run(
        Certifier(worker, SECRET).certify(
            image, CertifyParams(sigma=0.25, n0=100, n=1500), lambda d, p: seen.append((d, p))
        )
    )
    assert seen[-1] == (1600, 1600)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_a_photo_reports_progress_every_twenty_copies() -> None:
    worker = LocalSampler(no_denoiser(), threshold_classifier(0.99, 0.5, 0.25), device="cpu")
    seen: list[int] = []
    photo = torch.full((3, 224, 224), 0.5)
    asyncio.run(
        Certifier(worker, SECRET).certify(
            photo, CertifyParams(sigma=0.25, n0=20, n=100), lambda d, p: seen.append(d)
        )
    )
    assert seen == list(range(20, 121, 20))  # not once at the end of a 120-copy chunk


def test_large_images_get_smaller_chunks() -> None:
    assert chunk_size_for((3, 32, 32)) == 1000
    assert chunk_size_for((3, 224, 224)) == 20  # progress every 20 copies of a photo
    assert chunk_size_for((3, 8000, 8000)) == 1


def test_resize_happens_after_the_noise(image) -> None:
    """A 64x64 image for a 32x32 classifier: noise at 64x64, resize inside the base classifier."""
    torch.manual_seed(0)
    classifier = LoadedModel(
        "r", "classifier", "cifar-resnet20", "1", cifar_resnet(20).eval(), tuple("abcdefghij"), 32
    )
    worker = LocalSampler(load_denoiser("none"), classifier, device="cpu")
    big = torch.rand(3, 64, 64)
    certificate = asyncio.run(Certifier(worker, SECRET).certify(big, CertifyParams(n0=10, n=50)))
    assert sum(c.count for c in certificate.top_counts) <= 50
    assert certificate.image_digest == image_digest(big)


def _strip(certificate: Certificate) -> dict:
    """The certificate without what differs between runs (id, timings, cache accounting)."""
    return certificate.model_dump(exclude={"request_id", "timings", "queries", "cost"})


def test_a_repeated_request_is_answered_from_the_vote_store(conv_classifier, image) -> None:
    worker = LocalSampler(no_denoiser(), conv_classifier, device="cpu")
    certifier = Certifier(worker, SECRET, InMemoryVoteStore())
    params = CertifyParams(sigma=0.5, n0=100, n=2000)
    first = asyncio.run(certifier.certify(image, params))
    second = asyncio.run(certifier.certify(image, params))
    assert first.queries.cached == 0
    assert second.queries.cached == second.queries.total == 2100
    assert _strip(second) == _strip(first)


def test_a_larger_n_reuses_stored_chunks_and_equals_a_fresh_run(conv_classifier, image) -> None:
    worker = LocalSampler(no_denoiser(), conv_classifier, device="cpu")
    store = InMemoryVoteStore()
    asyncio.run(Certifier(worker, SECRET, store).certify(image, CertifyParams(n0=100, n=2000)))
    larger = CertifyParams(n0=100, n=3500)
    extended = asyncio.run(Certifier(worker, SECRET, store).certify(image, larger))
    fresh = asyncio.run(Certifier(worker, SECRET).certify(image, larger))
    assert extended.queries.cached == 100 + 2000  # the selection chunk and two full chunks
    assert _strip(extended) == _strip(fresh)


@pytest.mark.slow
def test_predict_is_wrong_at_most_alpha_of_the_time() -> None:
    """PREDICT returns the true top class or abstains, with probability >= 1 - alpha."""
    alpha, runs = 0.01, 2000
    worker = LocalSampler(no_denoiser(), threshold_classifier(0.52, 0.5, 0.25, p_b=0.48), "cpu")
    image = torch.full((3, 1, 1), 0.5)
    wrong = sum(
        asyncio.run(
            Certifier(worker, SECRET + str(run).encode()).predict(
                image, PredictParams(sigma=0.25, n=500, alpha=alpha)
            )
        ).label
        == "b"
        for run in range(runs)
    )
    assert wrong / runs <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


def test_fixed_sizes_are_powers_of_two_up_to_the_largest_batch() -> None:
    assert [fixed_size(s, 500) for s in (1, 2, 3, 100, 128, 129, 256, 257, 499, 500)] == [
        1, 2, 4, 128, 128, 256, 256, 500, 500, 500,
    ]  # fmt: skip
    assert len({fixed_size(s, 500) for s in range(1, 501)}) == 10  # 9 powers of two + 500


@pytest.mark.slow
def test_padding_to_a_fixed_size_changes_no_output(conv_classifier) -> None:
    model = conv_classifier.module.eval()
    batch = torch.randn(37, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        padded = run_fixed_size(model, batch, largest=500)  # runs at 64
        assert padded.shape == (37, 10)
        torch.testing.assert_close(padded, model(batch), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_a_fixed_shape_worker_counts_as_the_plain_one(conv_classifier, image) -> None:
    plain = LocalSampler(no_denoiser(), conv_classifier, device="cpu", batch_size=64)
    fixed = LocalSampler(
        no_denoiser(), conv_classifier, device="cpu", batch_size=64, fixed_shapes=True
    )
    noisy = image + 0.5 * torch.randn(300, *image.shape, generator=torch.Generator().manual_seed(3))
    # Batches of 64 and a last one of 44, padded to 64.
    agreement = (fixed.labels(noisy) == plain.labels(noisy)).float().mean().item()
    assert agreement >= 0.99  # another batch size may round a near-tie differently
    assert not LocalSampler(no_denoiser(), conv_classifier, device="cpu", compile=True).fixed_shapes


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_cuda_graphs_label_as_the_eager_worker(conv_classifier, image) -> None:
    eager = LocalSampler(no_denoiser(), conv_classifier, device="cuda", batch_size=64)
    graphed = LocalSampler(
        no_denoiser(), conv_classifier, device="cuda", batch_size=64, compile=True
    )
    assert graphed.fixed_shapes
    noisy = image + 0.5 * torch.randn(300, *image.shape, generator=torch.Generator().manual_seed(4))
    for _ in range(2):  # the second pass replays the graphs recorded by the first
        agreement = (graphed.labels(noisy) == eager.labels(noisy)).float().mean().item()
        assert agreement >= 0.99
    chunk = Chunk(phase=Phase.ESTIMATION, index=0, size=300, seed=5, sigma=0.25, digest="d")
    denoised = graphed.denoised(image, chunk)
    assert denoised.shape == (300, *image.shape) and denoised.device.type == "cpu"
    params = CertifyParams(sigma=0.5)
    fast = asyncio.run(Certifier(graphed, SECRET).certify(image, params))
    assert fast.label == asyncio.run(Certifier(eager, SECRET).certify(image, params)).label


@pytest.mark.slow
def test_a_compiled_worker_is_recorded_and_labels_as_the_eager_one(conv_classifier, image) -> None:
    eager = LocalSampler(no_denoiser(), conv_classifier, device="cpu")
    fast = LocalSampler(no_denoiser(), conv_classifier, device="cpu", batch_size=64, compile=True)
    noisy = image + 0.5 * torch.randn(300, *image.shape, generator=torch.Generator().manual_seed(1))
    # Batches of 64 and a last one of 44: one graph with a dynamic batch size serves both.
    agreement = (fast.labels(noisy) == eager.labels(noisy)).float().mean().item()
    assert agreement >= 0.99  # rounding may flip a near-tie, nothing more
    certificate = asyncio.run(Certifier(fast, SECRET).certify(image, CertifyParams(sigma=0.5)))
    assert certificate.precision == "fp32+compile"
    # Another base classifier, so other noise seeds: nothing cached for the eager one is reused.
    assert fast.noise_params != eager.noise_params
