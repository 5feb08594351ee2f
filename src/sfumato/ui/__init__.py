"""sfumato's web app (Gradio): :func:`build_app` over the request handlers in :mod:`sfumato.ui.handlers`."""

from ..offline import stay_offline
from .handlers import Limits

__all__ = ["Limits", "build_app", "build_parser", "serve", "stay_offline"]


def build_app(**kwargs):
    from .app import build_app as build

    return build(**kwargs)


def build_parser():
    """``python app.py``'s options."""
    import argparse

    parser = argparse.ArgumentParser(prog="python app.py", description="sfumato's web app, offline.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this computer only)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on (default: 7860)")
    parser.add_argument("--share", action="store_true", help="also open a public Gradio share link (goes online; default: off)")
    parser.add_argument("--model", default="mini", help="the model offered first: mini, a hub id or a local folder (default: mini, built in)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--online", action="store_true",
                        help="allow downloads: models given as hub ids (default: local files and caches only)")
    parser.add_argument("--concurrency", type=int, default=2, help="requests served at once (default: 2)")
    parser.add_argument("--max-files", type=int, default=Limits.max_files,
                        help=f"images per request (default: {Limits.max_files})")
    parser.add_argument("--max-file-mb", type=float, default=Limits.max_file_mb,
                        help=f"size limit per upload, in MB (default: {Limits.max_file_mb:g})")
    parser.add_argument("--max-pixels", type=int, default=Limits.max_pixels,
                        help=f"pixel limit per image (default: {Limits.max_pixels:,})")
    return parser


def serve(argv: list[str] | None = None, *, block: bool = True):
    """``python app.py``: serve the page on 127.0.0.1 (``--host``, ``--port``, ``--share`` only when asked).

    Returns the running app when ``block`` is False (for tests); otherwise serves until stopped.
    """
    args = build_parser().parse_args(argv)
    stay_offline(args.online)
    limits = Limits(max_files=args.max_files, max_file_mb=args.max_file_mb, max_pixels=args.max_pixels)

    from .app import THEME, build_app as build

    app = build(model=args.model, device=args.device, limits=limits)
    app.queue(default_concurrency_limit=args.concurrency, max_size=64)
    app.launch(server_name=args.host, server_port=args.port, share=args.share, theme=THEME,
               max_file_size=int(args.max_file_mb * 2**20), show_error=True, prevent_thread_lock=not block)
    return app
