"""Step results: every check prints one `ok` or `FAIL` line and failures are counted."""


class Step:
    """The outcome of one step of the checker (or of one call in a test)."""

    def __init__(self, echo=True):
        self.failures = []
        self.echo = echo

    def ok(self, msg):
        self.say("  ok   " + msg)

    def fail(self, msg):
        self.failures.append(msg)
        self.say("  FAIL " + msg)

    def say(self, line):
        if self.echo:
            print(line, flush=True)

    @property
    def passed(self):
        return not self.failures
