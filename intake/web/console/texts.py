"""The console's words in Chinese and English. Page modules add their own with `add_texts`;
templates read them as `t.key` (a missing key is an error, never an empty label)."""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "zh": {
        "html_lang": "zh-CN",
        "console": "运维与合规控制台",
        "switch": "English",
        "skip": "跳到正文",
        "nav": "主导航",
        "signed_in_as": "当前用户",
        "sign_in": "登录",
        "sign_in_title": "登录控制台",
        "sign_out": "退出登录",
        "user_name": "用户名",
        "password": "密码",
        "bad_credentials": "用户名或密码不正确。",
        "locked": "尝试次数过多，该账户已锁定至 {until}（UTC）。",
        "csrf": "页面已过期或请求无效，请刷新页面后重试。",
        "rate": "尝试过于频繁，请 {seconds} 秒后再试。",
        "forbidden": "您的角色无权访问此页面。",
        "not_found": "未找到。",
        "role_operator": "运维",
        "role_compliance": "合规",
        "yes": "是",
        "no": "否",
        "none": "无",
        "back": "返回",
    },
    "en": {
        "html_lang": "en",
        "console": "Operations and compliance console",
        "switch": "中文",
        "skip": "Skip to content",
        "nav": "Main navigation",
        "signed_in_as": "Signed in as",
        "sign_in": "Sign in",
        "sign_in_title": "Sign in to the console",
        "sign_out": "Sign out",
        "user_name": "User name",
        "password": "Password",
        "bad_credentials": "The user name or password is not correct.",
        "locked": "Too many attempts: this account is locked until {until} (UTC).",
        "csrf": "The page has expired or the request is not valid. Reload the page and try again.",
        "rate": "Too many attempts from here. Please try again in {seconds} seconds.",
        "forbidden": "Your role may not open this page.",
        "not_found": "Not found.",
        "role_operator": "Operator",
        "role_compliance": "Compliance",
        "yes": "yes",
        "no": "no",
        "none": "none",
        "back": "Back",
    },
}


def add_texts(zh: dict[str, str], en: dict[str, str]) -> None:
    """A page module's own words (same keys in both languages; a clash with an existing key is a bug)."""
    if set(zh) != set(en):
        raise ValueError(f"texts differ between zh and en: {sorted(set(zh) ^ set(en))}")
    clash = set(zh) & set(TEXTS["zh"])
    if clash and any(TEXTS["zh"][k] != zh[k] or TEXTS["en"][k] != en[k] for k in clash):
        raise ValueError(f"texts defined twice: {sorted(clash)}")
    TEXTS["zh"].update(zh)
    TEXTS["en"].update(en)
