"""The console's UI text in Japanese and English. Each page family adds its keys to both
catalogues; a key missing from either fails the tests (``tests/unit/api/test_console_base.py``)."""

from __future__ import annotations

from typing import Final

LANGS: Final = ("ja", "en")

TEXT: Final[dict[str, dict[str, str]]] = {
    "ja": {
        "app.title": "Kizuna コンソール",
        "nav.home": "ホーム",
        "nav.customers": "顧客",
        "nav.programs": "プログラム",
        "nav.segments": "セグメント",
        "nav.campaigns": "キャンペーン",
        "nav.reports": "レポート",
        "nav.sign_out": "サインアウト",
        "signin.title": "サインイン",
        "signin.username": "ユーザー名",
        "signin.password": "パスワード",
        "signin.submit": "サインイン",
        "signin.failed": "ユーザー名またはパスワードが違います。",
        "home.welcome": "ようこそ、{name} さん",
        "home.role": "権限: {role}",
        "error.title": "エラー",
        "error.forbidden": "この操作には {role} 権限が必要です。",
        "lang.switch": "English",
    },
    "en": {
        "app.title": "Kizuna console",
        "nav.home": "Home",
        "nav.customers": "Customers",
        "nav.programs": "Programs",
        "nav.segments": "Segments",
        "nav.campaigns": "Campaigns",
        "nav.reports": "Reports",
        "nav.sign_out": "Sign out",
        "signin.title": "Sign in",
        "signin.username": "Username",
        "signin.password": "Password",
        "signin.submit": "Sign in",
        "signin.failed": "Wrong username or password.",
        "home.welcome": "Welcome, {name}",
        "home.role": "Role: {role}",
        "error.title": "Error",
        "error.forbidden": "This needs the {role} group.",
        "lang.switch": "日本語",
    },
}


class Translator:
    """``t("key", name=...)`` in templates: the text in the page's language, formatted."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGS else "ja"

    def __call__(self, key: str, **values: object) -> str:
        text = TEXT[self.lang].get(key)
        if text is None:
            raise KeyError(f"no {self.lang} text for {key!r}")
        return text.format(**values) if values else text
