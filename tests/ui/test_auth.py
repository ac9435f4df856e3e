"""Accounts while `medchat serve` runs (issue 27 item 13): a user added with `prefs add-user` signs in
without a restart; a users file damaged or removed meanwhile never opens the app or drops accounts."""

import socket

import pytest

from chatbot.ui.auth import Users, add_user


def test_a_user_added_while_serving_signs_in_without_a_restart(tmp_path):
    path = tmp_path / "users.yaml"
    add_user(path, "ada", "first-secret", role="clinician")
    users = Users.load(path)  # as `serve` loads it at start
    assert users.check("ada", "first-secret") and not users.check("bo", "second-secret")
    add_user(path, "bo", "second-secret", role="nurse", admin=True)  # `prefs add-user`, another process
    assert users.check("bo", "second-secret")
    assert users.role("bo") == "nurse" and users.is_admin("bo") and not users.is_admin("ada")
    add_user(path, "ada", "new-secret", role="clinician")  # a changed password holds at once too
    assert users.check("ada", "new-secret") and not users.check("ada", "first-secret")


def test_a_users_file_damaged_or_removed_while_serving_keeps_the_accounts_it_had(tmp_path):
    path = tmp_path / "users.yaml"
    add_user(path, "ada", "secret", role="clinician", admin=True)
    users = Users.load(path)
    path.write_text("users: [not, a, mapping]\n", encoding="utf-8")  # a half-edited file
    assert users.check("ada", "secret") and users.is_admin("ada")
    path.unlink()
    assert users.check("ada", "secret") and not users.is_admin(None)  # never "no users: all admin"
    add_user(path, "bo", "other", role="nurse")  # fixed again: read again
    assert users.check("bo", "other") and not users.check("ada", "secret")


def test_an_emptied_users_file_signs_nobody_in_and_makes_nobody_admin(tmp_path):
    path = tmp_path / "users.yaml"
    add_user(path, "ada", "secret", admin=True)
    users = Users.load(path)
    path.write_text("users: {}\n", encoding="utf-8")
    assert not users.check("ada", "secret") and not users.is_admin("ada") and not users.is_admin(None)


def test_an_app_started_without_users_stays_open_when_one_is_added(tmp_path):
    """Logins are decided when `serve` starts: a user added later does not lock the local admin out."""
    path = tmp_path / "users.yaml"
    users = Users.load(path)
    assert not users and users.is_admin(None)
    add_user(path, "ada", "secret")
    assert users.is_admin(None) and users.check("ada", "secret")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # a real server
def test_on_a_running_server_a_user_added_meanwhile_signs_in(tmp_path):
    import gradio as gr
    import httpx

    path = tmp_path / "users.yaml"
    add_user(path, "ada", "secret")
    users = Users.load(path)
    with gr.Blocks() as app:
        gr.Markdown("hello")
    port = _free_port()
    app.launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, auth=users.check
    )
    try:
        base = f"http://127.0.0.1:{port}"
        bo = {"username": "bo", "password": "later"}
        assert httpx.post(f"{base}/login", data=bo).status_code == 400
        add_user(path, "bo", "later")
        assert httpx.post(f"{base}/login", data=bo).status_code == 200
    finally:
        app.close()
