"""Mining-quality benchmark (issue 5): does mining help on a long-tail task with label noise?"""
