"""A Markdown reply exercising every construct the dialects handle (shared by the channels' render tests)."""

SAMPLE = """# Release notes

Some **bold**, _italic_, ~~gone~~ and `a < b && c` text with [docs](https://example.com/a?b=1&c=2).

- first
- second
  - nested

1. one
2. two

> quoted **text**

```python
if a < b and "**" in s:
    print("&")
```

| Name | Score |
|------|------:|
| Ann  | 10 |
| 李雷 | 9 |
"""
