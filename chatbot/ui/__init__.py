"""The Gradio app. Library code builds it (`build_app`); only the CLI launches it."""
