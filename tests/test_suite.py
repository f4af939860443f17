"""Suite files: valid ones load; bad ones name the file, the field and the line."""

import pytest
from support.paths import EXAMPLES

from llmbench_tui.suite import SuiteError, load_suite


def write(tmp_path, text):
    p = tmp_path / "s.toml"
    p.write_text(text)
    return p


def test_examples_load():

    examples = sorted(EXAMPLES.glob("*.toml"))
    assert examples, "examples/ has no suites"
    for path in examples:
        suite = load_suite(path)
        assert suite.prompts or suite.conversations


def test_bad_field_names_file_field_and_line(tmp_path):
    p = write(tmp_path, 'models = ["embedded"]\nrepetitions = 2\n\n[[prompts]]\nid = "a"\n'
                        'text = "hi"\n\n[[prompts]]\nid = "b"\ntext = 42\n')
    with pytest.raises(SuiteError) as err:
        load_suite(p)
    msg = str(err.value)
    assert f"{p}:10" in msg and "prompts.1.text" in msg


def test_bad_option_line(tmp_path):
    p = write(tmp_path, '[options]\nseed = 1\ntemperature = -3\n\n[[prompts]]\nid="a"\ntext="x"\n')
    with pytest.raises(SuiteError) as err:
        load_suite(p)
    assert f"{p}:3" in str(err.value) and "options.temperature" in str(err.value)


def test_unknown_key_and_bad_model_spec(tmp_path):
    p = write(tmp_path, 'modles = ["x"]\n[[prompts]]\nid="a"\ntext="x"\n')
    with pytest.raises(SuiteError, match=r"s.toml:1: field 'modles'"):
        load_suite(p)
    p = write(tmp_path, 'models = ["llama3"]\n[[prompts]]\nid="a"\ntext="x"\n')
    with pytest.raises(SuiteError, match=r"s.toml:1: field 'models'.*bad model spec 'llama3'"):
        load_suite(p)


def test_toml_syntax_error_has_line(tmp_path):
    p = write(tmp_path, 'models = ["embedded"]\nrepetitions = = 3\n')
    with pytest.raises(SuiteError, match=r"not valid TOML.*line"):
        load_suite(p)


def test_missing_file_and_no_prompts(tmp_path):
    with pytest.raises(SuiteError, match="suite file not found"):
        load_suite(tmp_path / "nope.toml")
    with pytest.raises(SuiteError, match="no prompts"):
        load_suite(write(tmp_path, 'models = ["embedded"]\n'))


def test_duplicate_prompt_ids(tmp_path):
    p = write(tmp_path, '[[prompts]]\nid="a"\ntext="x"\n[[prompts]]\nid="a"\ntext="y"\n')
    with pytest.raises(SuiteError, match="duplicate prompt id 'a'"):
        load_suite(p)
