"""The guide's worked cases (§8.1, §8.2) as tools: ``anypool crawl`` and ``anypool thumbs``.

Each tool is an engine module (``_crawl``, ``_thumbs``) and a thin command module
(``_crawl_cli``, ``_thumbs_cli``) with ``register(subparsers)``. Their third-party
libraries (httpx, Pillow) come with the ``apps`` extra and are imported only when a tool
runs, so ``anypool --help`` works without them.
"""
