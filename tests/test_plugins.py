"""Plugins: built-ins via entry points, a third-party distribution, block and allow lists."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from harness.errors import HarnessError
from harness.plugins import load_plugins, plugins

PLUGIN = textwrap.dedent(
    '''
    from dataclasses import dataclass
    from harness import hookimpl
    from harness.defense import DefendedModel, Defense

    @dataclass
    class ShoutConfig:
        word: str = "CAREFUL"

    class Shout(Defense):
        name = "shout"
        description = "Example third-party defense: a one-word system prompt."
        Config = ShoutConfig

        def apply(self, loaded, ctx):
            word = self.config.word
            return DefendedModel(loaded.model, loaded.tokenizer,
                                 transform=lambda m: [{"role": "system", "content": word}] + m,
                                 info={"word": word})

    @hookimpl
    def register_defenses(register):
        register(Shout)
    '''
)


@pytest.fixture
def third_party(tmp_path):
    """A tiny installed-looking distribution: a module plus a dist-info with a real entry point."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "harness_shout.py").write_text(PLUGIN)
    info = site / "harness_shout-0.3.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: harness-shout\nVersion: 0.3.0\n")
    (info / "entry_points.txt").write_text("[harness]\nshout = harness_shout\n")
    env = dict(os.environ, PYTHONPATH=str(site))
    return env


def _cli(env, *args):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], env=env, capture_output=True, text=True,
                          timeout=600)


def test_builtins_are_registered_through_entry_points():
    p = plugins()
    assert {"none", "self-reminder"} <= set(p.defenses.names())
    assert {"jbb-harmful", "xstest-safe"} <= set(p.benchmarks.names())
    assert "keyword" in p.judges.names() and "smollm2-135m-instruct" in p.models.names()
    assert p.defenses.entry("none").distribution == "defense-harness"
    assert "defense-none" in p.loaded


def test_unknown_name_lists_known_and_suggests():
    with pytest.raises(HarnessError) as err:
        plugins().benchmarks.get("xstest-saf")
    assert "Did you mean 'xstest-safe'" in str(err.value) and "jbb-harmful" in str(err.value)


def _site(tmp_path, monkeypatch, entry_points: str, dist="harness-shout"):
    """An installed-looking distribution on sys.path of this process, announcing ``entry_points``."""
    site = tmp_path / f"site-{dist}"
    site.mkdir()
    (site / "harness_shout.py").write_text(PLUGIN)
    info = site / f"{dist.replace('-', '_')}-0.3.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3.0\n")
    (info / "entry_points.txt").write_text("[harness]\n" + entry_points)
    monkeypatch.syspath_prepend(str(site))


def test_block_and_allow_lists(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_BLOCK_PLUGINS", "defense-self-reminder")
    assert "self-reminder" not in load_plugins().defenses.names()
    monkeypatch.delenv("HARNESS_BLOCK_PLUGINS")
    _site(tmp_path, monkeypatch, "shout = harness_shout\n")
    # the allow-list narrows third-party plugins only: the built-in backend, benchmarks and judges stay
    monkeypatch.setenv("HARNESS_ALLOW_PLUGINS", "shout")
    p = load_plugins()
    assert "shout" in p.defenses.names() and "transformers" in p.backends.names() and p.benchmarks.names()
    monkeypatch.setenv("HARNESS_ALLOW_PLUGINS", "some-other-plugin")
    assert "shout" not in load_plugins().defenses.names()
    monkeypatch.delenv("HARNESS_ALLOW_PLUGINS")
    # blocking by distribution name, and by distribution:entry-point
    for spec in ("harness-shout", "harness-shout:shout"):
        monkeypatch.setenv("HARNESS_BLOCK_PLUGINS", spec)
        assert "shout" not in load_plugins().defenses.names()


def test_an_entry_point_name_two_distributions_announce_is_an_error(monkeypatch, tmp_path):
    _site(tmp_path, monkeypatch, "suites = harness_shout\n")
    with pytest.raises(HarnessError, match="entry point 'suites' is announced by .* and by .*rename one.*"
                                           "HARNESS_BLOCK_PLUGINS="):
        load_plugins()
    monkeypatch.setenv("HARNESS_BLOCK_PLUGINS", "harness-shout:suites")
    assert "quick" in load_plugins().suites.names()


def test_registration_is_validated():
    from harness.plugins import Registry, _check_plugin_class
    from harness.defense import Defense

    reg = Registry("defense", _check_plugin_class("defense", Defense))
    with pytest.raises(HarnessError, match="must register a subclass of Defense"):
        reg.add(object(), "p", ("d", "1"))

    class NoConfig(Defense):
        name = "x"

    with pytest.raises(HarnessError, match="must set the class attribute 'Config'"):
        reg.add(NoConfig, "p", ("d", "1"))


def test_third_party_defense_is_listed_and_runs(third_party, tiny_dir, tiny_suite, data_dir, tmp_path):
    listed = _cli(third_party, "list", "defenses")
    assert listed.returncode == 0, listed.stderr
    assert "shout" in listed.stdout and "harness-shout" in listed.stdout and "word: str = 'CAREFUL'" in listed.stdout
    out = tmp_path / "run"
    done = _cli(third_party, "run", "--defense", "shout", "--set", "word=HEY", "--model", str(tiny_dir),
                "--suite", str(tiny_suite), "--data-dir", str(data_dir), "--out", str(out), "--no-progress")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["defense"]["distribution"] == "harness-shout" and manifest["defense"]["version"] == "0.3.0"
    assert manifest["defense"]["info"] == {"word": "HEY"}
    blocked = _cli(dict(third_party, HARNESS_BLOCK_PLUGINS="shout"), "run", "--defense", "shout")
    assert blocked.returncode == 2 and "unknown defense 'shout'" in blocked.stderr


def test_construct_builds_the_typed_config(data_dir):
    from harness.data import DataResolver

    judge = plugins().judges.construct("keyword", {"detect_incoherent": "false"}, DataResolver(data_dir))
    assert judge.config.detect_incoherent is False and judge.config.rule is None
    with pytest.raises(HarnessError, match="judge 'keyword': unknown config key 'rul'. Did you mean 'rule'"):
        plugins().judges.construct("keyword", {"rul": "x"}, DataResolver(data_dir))


def test_harness_list_plugins_shows_entry_point_names(capsys):
    from harness.cli import main

    assert main(["list", "plugins"]) == 0
    out = capsys.readouterr().out
    assert "defense-mosr" in out and "defenses: mosr, mosr-no-caa, mosr-no-oalw" in out and "defense-harness" in out
