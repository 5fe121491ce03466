"""`braze quantize` and `braze eval ppl` on the command line (errors first: they are cheap)."""
import json

from braze.cli.main import main


def test_quantize_refuses_a_non_empty_folder(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["quantize", "--model", "smollm2", "--method", "int8", "--out", str(tmp_path)]) == 1
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_unknown_method_names_the_known_ones(tmp_path, capsys):
    assert main(["quantize", "--method", "int3", "--out", str(tmp_path / "q")]) == 1
    assert "int4-awq-g128" in capsys.readouterr().err


def test_eval_ppl_json(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("The keeper lit the lamp at sunset, trimmed the wick, polished the glass and wound the "
                    "clockwork. In the morning he put out the lamp and slept until noon.")
    assert main(["eval", "ppl", "--model", "smollm2", "--device", "cpu", "--text", str(text), "--window", "512",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["tokens"] > 20 and 1 < result["ppl"] < 1000 and result["method"] == "none"
