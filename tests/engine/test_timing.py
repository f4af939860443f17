"""Client formulas (README, Metrics) on scripted instants: each assertion fails if one is wrong."""

import pytest

from llmbench_tui.engine.timing import Arrivals, client_timings, inter_token_gaps, percentile

MS = 1_000_000


def scripted(t_send=0, times=(), texts=None, n_tokens=None):
    a = Arrivals(t_send)
    texts = texts or ["x"] * len(times)
    for i, t in enumerate(times):
        a.add(t, texts[i], "", None if n_tokens is None else n_tokens[i])
    return a


def test_ttft_counts_from_send_to_first_text_chunk():
    a = scripted(t_send=100 * MS, times=[350 * MS, 360 * MS, 370 * MS])
    t = client_timings(a, t_last=380 * MS, output_tokens=3)
    assert t.ttft_s == pytest.approx(0.250)
    assert t.e2e_s == pytest.approx(0.280)


def test_decode_rate_and_tpot_exclude_the_first_token():
    # 11 tokens, first at 1.0 s, last at 2.0 s: 10 gaps in 1 s -> 10 tok/s, TPOT 0.1 s.
    times = [1000 * MS + i * 100 * MS for i in range(11)]
    t = client_timings(scripted(0, times), t_last=times[-1], output_tokens=11)
    assert t.decode_tok_s == pytest.approx(10.0)
    assert t.tpot_s == pytest.approx(0.1)
    # A formula that divided by all tokens or counted TTFT would give 11/2.0 = 5.5.
    assert t.decode_tok_s != pytest.approx(5.5)


def test_decode_rate_null_below_two_tokens():
    t = client_timings(scripted(0, [5 * MS]), t_last=6 * MS, output_tokens=1)
    assert t.decode_tok_s is None and t.tpot_s is None
    assert t.ttft_s == pytest.approx(0.005)


def test_itl_percentiles_exclude_ttft():
    times = [500 * MS, 510 * MS, 520 * MS, 530 * MS, 630 * MS]  # gaps 10,10,10,100 ms
    t = client_timings(scripted(0, times), t_last=times[-1], output_tokens=5)
    assert t.itl_p50_s == pytest.approx(0.010)
    assert t.itl_max_s == pytest.approx(0.100)
    assert t.itl_unit == "chunk"
    assert t.chunks == 5


def test_multi_token_chunk_gap_divided_only_when_counts_known():
    gaps, unit = inter_token_gaps([0, 40 * MS], [1, 4])
    assert unit == "token" and gaps == pytest.approx([0.010] * 4)
    gaps, unit = inter_token_gaps([0, 40 * MS], [None, None])
    assert unit == "chunk" and gaps == pytest.approx([0.040])


def test_ttfc_differs_from_ttft_for_thinking():
    a = Arrivals(0)
    a.add(100 * MS, "", "hmm", None)
    a.add(300 * MS, "Answer", "", None)
    t = client_timings(a, t_last=300 * MS, output_tokens=2)
    assert t.ttft_s == pytest.approx(0.1)
    assert t.ttfc_s == pytest.approx(0.3)
    assert a.response == "Answer"


def test_bytes_per_second_uses_utf8_bytes():
    a = scripted(0, [500 * MS], texts=["é€"])  # 2 chars, 5 bytes
    t = client_timings(a, t_last=1000 * MS, output_tokens=1)
    assert t.output_chars == 2
    assert t.bytes_per_s == pytest.approx(5.0)


def test_percentile_linear_interpolation():
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile([1.0, 2.0, 3.0, 4.0], 100) == 4.0
    assert percentile([7.0], 99) == 7.0
