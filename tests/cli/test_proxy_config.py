"""`medchat proxy-config`: the nginx configuration for several replicas, checked by nginx itself
(`nginx -t`, where nginx is installed), and its refusals of bad input."""

from __future__ import annotations

import re
import subprocess

import pytest
from click.testing import CliRunner

from chatbot.cli import main
from tests.servers import as_unprivileged, nginx_binary, server_folder


@pytest.fixture
def runner():
    return CliRunner()


def test_renders_one_pinned_upstream_per_replica(runner, tmp_path):
    args = ["proxy-config", "--replica", "10.0.0.5:7860", "--replica", "app-2.internal:7860"]
    result = runner.invoke(main, [*args, "--listen", "0.0.0.0:80", "--state-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    conf = result.output
    pool = re.search(r"upstream medchat_pool \{(.*?)\}", conf, re.S)
    assert pool and pool.group(1).count("server ") == 2
    assert (
        "upstream medchat_r0 {\n    server 10.0.0.5:7860;\n    server app-2.internal:7860 backup;\n}" in conf
    )
    assert (
        "upstream medchat_r1 {\n    server app-2.internal:7860;\n    server 10.0.0.5:7860 backup;\n}" in conf
    )
    assert "    r0 medchat_r0;\n    r1 medchat_r1;" in conf
    assert r'"~(^|, )app\-2\.internal:7860$" r1;' in conf
    assert "listen 0.0.0.0:80;" in conf and f"pid {tmp_path.resolve()}/nginx.pid;" in conf
    assert "proxy_buffering off;" in conf and "medchat_replica=$medchat_served_by" in conf
    assert "{{" not in conf


def test_the_conf_d_part_has_no_main_context(runner):
    result = runner.invoke(main, ["proxy-config", "--replica", "127.0.0.1:7861", "--conf-d"])
    assert result.exit_code == 0, result.output
    assert "events {" not in result.output and "pid " not in result.output and "http {" not in result.output
    assert result.output.rstrip().endswith("}") and "upstream medchat_r0" in result.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["--replica", "7861", "--conf-d"],
            "--replica '7861' is not HOST:PORT: write it like 127.0.0.1:7861",
        ),
        (["--replica", "h:99999", "--conf-d"], "--replica 'h:99999' is not HOST:PORT"),
        (["--replica", "h:1", "--listen", "h", "--conf-d"], "--listen 'h' is not HOST:PORT"),
        (["--replica", "h:1", "--replica", "h:1", "--conf-d"], "names the same server twice"),
        (["--replica", "h:1"], "say which configuration to render: --state-dir DIR"),
        (["--replica", "h:1", "--conf-d", "--max-body", "lots"], "--max-body 'lots' is not an nginx size"),
        (["--replica", "h:1", "--state-dir", "/tmp/a b"], "has a space, quote, brace or ';'"),
    ],
)
def test_bad_input_is_one_line_naming_it(runner, args, says):
    result = runner.invoke(main, ["proxy-config", *args])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and result.output.count("\n") == 1
    assert says in result.output


def test_nginx_accepts_the_rendered_configuration(runner):
    binary = nginx_binary()
    with server_folder("medchat-nginx-t-") as state:
        pair = ["--replica", "127.0.0.1:7861", "--replica", "127.0.0.1:7862"]
        result = runner.invoke(
            main, ["proxy-config", *pair, "--state-dir", str(state), "-o", str(state / "nginx.conf")]
        )
        assert result.exit_code == 0, result.output
        assert f"nginx -p {state} -e {state}/error.log -c {state}/nginx.conf" in result.output
        cmd = [*as_unprivileged(), str(binary), "-t", "-p", str(state), "-e", str(state / "error.log")]
        checked = subprocess.run([*cmd, "-c", str(state / "nginx.conf")], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
        assert "test is successful" in checked.stderr
        # the conf.d part, included in the http block of another nginx.conf
        part = runner.invoke(main, ["proxy-config", "--replica", "127.0.0.1:7861", "--conf-d"])
        (state / "medchat.conf").write_text(part.output)
        wrapper = (state / "nginx.conf").read_text()
        start = wrapper.index("\nupstream medchat_pool")
        (state / "wrapper.conf").write_text(wrapper[:start] + "\ninclude medchat.conf;\n}\n")
        checked = subprocess.run([*cmd, "-c", str(state / "wrapper.conf")], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
