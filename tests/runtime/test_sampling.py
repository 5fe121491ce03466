import math

import pytest
import torch

from braze.errors import InvalidArgumentError
from braze.runtime.sampling import SamplingParams, make_generator, sample
from braze.runtime.stop import StopStringMatcher, find_stop, holdback

V = 64


def _logits(n=4, v=V, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, v, generator=g) * 3


def test_greedy_equals_argmax():
    logits = _logits(8)
    params = [SamplingParams(temperature=0.0)] * 8
    assert torch.equal(sample(logits, params), logits.argmax(-1))
    assert sample(logits, params).dtype == torch.int64


def test_half_precision_logits_and_mixed_batch():
    logits = _logits(3).to(torch.bfloat16)
    params = [SamplingParams(temperature=0), SamplingParams(seed=1), SamplingParams(temperature=0)]
    out = sample(logits, params, [p.generator() for p in params])
    assert out.shape == (3,) and out.dtype == torch.int64
    ref = logits.float().argmax(-1)
    assert out[0] == ref[0] and out[2] == ref[2]


@pytest.mark.parametrize("temperature", [0.1, 1.0, 5.0, 100.0])
def test_top_k_1_is_greedy(temperature):
    logits = _logits(6)
    params = [SamplingParams(temperature=temperature, top_k=1, seed=i) for i in range(6)]
    gens = [p.generator() for p in params]
    for _ in range(5):
        assert torch.equal(sample(logits, params, gens), logits.argmax(-1))


def test_tiny_top_p_is_greedy():
    logits = _logits(6)
    params = [SamplingParams(temperature=2.0, top_p=1e-6, seed=i) for i in range(6)]
    gens = [p.generator() for p in params]
    for _ in range(5):
        assert torch.equal(sample(logits, params, gens), logits.argmax(-1))


def _draw(params, logits, steps):
    gens = [p.generator() for p in params]
    return torch.stack([sample(logits, params, gens) for _ in range(steps)])


def test_same_seed_same_tokens_different_seed_differs():
    logits = _logits(1, v=1000)
    a = _draw([SamplingParams(seed=1234)], logits, 50)
    b = _draw([SamplingParams(seed=1234)], logits, 50)
    c = _draw([SamplingParams(seed=4321)], logits, 50)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_seeded_row_does_not_depend_on_batch():
    logits = _logits(3, v=500)
    alone = _draw([SamplingParams(seed=7, top_p=0.9)], logits[1:2], 20)[:, 0]
    batch = [SamplingParams(temperature=0.7), SamplingParams(seed=7, top_p=0.9), SamplingParams(top_k=3)]
    together = _draw(batch, logits, 20)[:, 1]
    assert torch.equal(alone, together)


def test_distribution_matches_softmax():
    # Chi-square goodness of fit against softmax(logits / T) over 8 tokens.
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -0.5, -1.0, 1.5, 0.2]])
    temperature = 1.3
    n = 20000
    probs = torch.softmax(logits[0] / temperature, -1).double()
    params = [SamplingParams(temperature=temperature, seed=99)] * n
    gens = [make_generator(99)] + [None] * (n - 1)
    torch.manual_seed(0)
    draws = sample(logits.expand(n, -1), params, gens)
    counts = torch.bincount(draws, minlength=8).double()
    expected = probs * n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    # 7 degrees of freedom: P(chi2 > 24.3) ~ 0.001.
    assert chi2 < 24.3, (chi2, counts.tolist(), expected.tolist())


def test_top_p_distribution_renormalised():
    # probs 0.5, 0.3, 0.15, 0.05 with top_p=0.75 keeps {0, 1} in ratio 5:3.
    p = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = p.log().unsqueeze(0)
    n = 8000
    torch.manual_seed(1)
    draws = sample(logits.expand(n, -1), [SamplingParams(top_p=0.75)] * n)
    counts = torch.bincount(draws, minlength=4)
    assert counts[2] == 0 and counts[3] == 0
    frac0 = counts[0].item() / n
    assert abs(frac0 - 0.625) < 0.03


def test_top_p_keeps_token_that_crosses_threshold():
    # cumulative 0.5, 0.8: top_p=0.6 needs both tokens 0 and 1.
    logits = torch.tensor([0.5, 0.3, 0.2]).log().unsqueeze(0)
    n = 4000
    torch.manual_seed(2)
    draws = sample(logits.expand(n, -1), [SamplingParams(top_p=0.6)] * n)
    counts = torch.bincount(draws, minlength=3)
    assert counts[0] > 0 and counts[1] > 0 and counts[2] == 0


@pytest.mark.parametrize("k", [2, 5, 17])
def test_top_k_never_outside_top_k(k):
    logits = _logits(4, v=200, seed=k)
    allowed = torch.topk(logits, k, dim=-1).indices
    params = [SamplingParams(temperature=10.0, top_k=k, seed=i) for i in range(3)] + [SamplingParams(top_k=-1)]
    gens = [p.generator() for p in params]
    seen = set()
    for _ in range(200):
        out = sample(logits, params, gens)
        for r in range(3):
            assert out[r] in allowed[r]
            seen.add((r, int(out[r])))
    # With a high temperature every one of the k tokens shows up.
    assert len(seen) == 3 * k


def test_mixed_top_k_and_top_p_rows():
    logits = _logits(3, v=300)
    params = [SamplingParams(top_k=0, top_p=0.5, seed=1), SamplingParams(top_k=4, seed=2), SamplingParams(seed=3)]
    gens = [p.generator() for p in params]
    top4 = torch.topk(logits[1], 4).indices
    probs0 = torch.softmax(logits[0], -1)
    sorted_p, order = probs0.sort(descending=True)
    nucleus = order[: int((sorted_p.cumsum(0) < 0.5).sum()) + 1]
    for _ in range(100):
        out = sample(logits, params, gens)
        assert out[1] in top4
        assert out[0] in nucleus


def test_masked_vocab_never_sampled():
    logits = _logits(1, v=50)
    logits[0, 10:] = float("-inf")
    params = [SamplingParams(temperature=3.0, seed=5)]
    gens = [params[0].generator()]
    for _ in range(100):
        assert sample(logits, params, gens)[0] < 10


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(temperature=-0.1), "temperature"),
        (dict(temperature=float("nan")), "temperature"),
        (dict(top_p=0.0), "top_p"),
        (dict(top_p=1.5), "top_p"),
        (dict(max_tokens=0), "max_tokens"),
        (dict(max_tokens=2.5), "max_tokens"),
        (dict(top_k=-2), "top_k"),
        (dict(seed="x"), "seed"),
        (dict(stop=[""]), "stop"),
        (dict(stop_token_ids=[-1]), "stop_token_ids"),
    ],
)
def test_invalid_params_raise(kwargs, name):
    with pytest.raises(InvalidArgumentError) as e:
        SamplingParams(**kwargs)
    msg = str(e.value)
    assert name in msg and repr(next(iter(kwargs.values()))) in msg and "must be" in msg


def test_defaults_and_stop_normalisation():
    p = SamplingParams()
    assert (p.max_tokens, p.temperature, p.top_k, p.top_p, p.seed, p.ignore_eos) == (16, 1.0, -1, 1.0, None, False)
    assert not p.greedy and SamplingParams(temperature=0).greedy
    assert SamplingParams(stop="\n").stop_strings == ["\n"]
    assert SamplingParams(stop=["a", "bc"]).stop_strings == ["a", "bc"]
    assert SamplingParams().stop_strings == []


def test_sample_shape_errors():
    with pytest.raises(InvalidArgumentError):
        sample(torch.zeros(2, 5), [SamplingParams()])
    with pytest.raises(InvalidArgumentError):
        sample(torch.zeros(5), [SamplingParams()])


# ---- stop strings -------------------------------------------------------------------------


def test_find_stop():
    assert find_stop("Hello world", ["world"]) == 6
    assert find_stop("Hello world", ["xyz"]) is None
    assert find_stop("Hello world", []) is None
    assert find_stop("Hello world", None) is None
    # earliest start wins, whatever the order of the list
    assert find_stop("a STOP b END", ["END", "STOP"]) == 2
    assert find_stop("abcdef", ["cdef", "cd"]) == 2
    text = "The answer is 4.\nUser: next"
    i = find_stop(text, ["\nUser:"])
    assert text[:i] == "The answer is 4."


def test_holdback():
    assert holdback("Hello wor", ["world"]) == 3
    assert holdback("Hello", ["world"]) == 0
    assert holdback("Hello w", ["world", "wow"]) == 1
    assert holdback("Hello wo", ["world", "wow"]) == 2
    assert holdback("ab", ["abc"]) == 2
    assert holdback("aab", ["aabx", "bx"]) == 3
    assert holdback("", ["x"]) == 0
    assert holdback("xyz", []) == 0
    assert holdback("x<", ["<|im_end|>"]) == 1


@pytest.mark.parametrize("pieces", [["Hel", "lo", " wo", "rld", "!"], list("Hello world!"), ["Hello world!"]])
def test_stop_matcher_streaming(pieces):
    m = StopStringMatcher(["world", "wow"])
    shown = ""
    for piece in pieces:
        shown += m.feed(piece)
        assert "w" not in shown[6:] or m.stopped
        if m.stopped:
            break
    assert m.stopped and m.stop_string == "world"
    assert shown == "Hello " == m.text
    assert m.feed("more") == ""


def test_stop_matcher_false_alarm_is_released():
    m = StopStringMatcher(["<end>"])
    out = m.feed("a <e")
    assert out == "a "
    out += m.feed("x> b")
    assert out == "a <ex> b" and not m.stopped
    out += m.feed("<")
    out += m.flush()
    assert out == "a <ex> b<"


@pytest.mark.parametrize("temperature", [9.05733753449188e-116, 1e-30, 9e-6])
def test_a_vanishing_temperature_is_greedy_not_nan(temperature):
    # logits / 1e-116 overflow float32 to inf, and the softmax of inf is NaN
    logits = torch.randn(3, 50) * 10
    p = SamplingParams(temperature=temperature, seed=0)
    assert p.greedy
    assert torch.equal(sample(logits, [p] * 3, [p.generator()] * 3), logits.argmax(-1))
