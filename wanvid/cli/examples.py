"""The examples of every command, keyed by command path ("wanvid create", "wanvid config set"...).

One place for them, so that ``--help`` (``wanvid.cli.boundary`` puts them in each command's epilog),
docs/cli.md and the man page docs/wanvid.1 (scripts/gen_docs.py) show the same ones, and an example for
a new option is one line here. Each is (what it does, the command line): a line a user can paste, starting
with ``wanvid``, in a directory holding cat.png (and shots.csv for ``batch``). tests/cli/test_help_and_docs.py
checks that every command has some and runs them against the built-in gateway. ``wanvid`` and
``wanvid config`` are the groups' own (the man page's overview shows them).
"""

Example = tuple[str, str]  # (what it does, the command line)

EXAMPLES: dict[str, tuple[Example, ...]] = {
    "wanvid": (
        ("Store the API key (prompted, not echoed)", "wanvid config set-key"),
        ("Animate cat.png into cat.mp4", 'wanvid run cat.png -p "the cat walks toward the camera"'),
        ("Try it all offline: the built-in gateway", "wanvid sandbox"),
    ),
    "wanvid create": (
        ("Submit a task and print its id", 'wanvid create cat.png -p "the cat walks toward the camera"'),
        (
            "The prompt from a file, the request printed and nothing sent",
            "wanvid create cat.png --prompt-file prompt.txt --dry-run",
        ),
        (
            "Pay for another take of the same request",
            'wanvid create cat.png -p "the cat walks toward the camera" --new',
        ),
    ),
    "wanvid status": (
        ("The state of the most recent task", "wanvid status"),
        ("Only its status word, for a script", "wanvid status -q"),
        ("The whole task as JSON", "wanvid status --json"),
    ),
    "wanvid wait": (
        ("Wait for the most recent task and print its video URL", "wanvid wait"),
        ("Wait for every unfinished task, 10 minutes at most", "wanvid wait --all --timeout 600"),
        ("Wait for the three tasks listed last", "wanvid wait $(wanvid list -n 3 -q)"),
    ),
    "wanvid download": (
        ("Save the most recent task's video (where run meant it to go, else TASK_ID.mp4)", "wanvid download"),
        ("Save it as cat.mp4, replacing the file there", "wanvid download -o cat.mp4 --force"),
        ("Finish everything: wait for unfinished tasks, save every video not on disk", "wanvid download --all"),
    ),
    "wanvid run": (
        ("Animate cat.png into cat.mp4", 'wanvid run cat.png -p "the cat walks toward the camera"'),
        (
            "10 seconds long, the prompt from a file, into yawn.mp4",
            "wanvid run cat.png --prompt-file prompt.txt --duration 10 -o yawn.mp4",
        ),
        (
            "Run a command once the video is saved",
            "wanvid run cat.png -o walk.mp4 --on-complete 'echo \"saved $WANVID_OUTPUT\"'",
        ),
    ),
    "wanvid batch": (
        (
            "What would be created, reused or skipped, and the seconds billed; nothing sent",
            "wanvid batch shots.csv -d videos --dry-run",
        ),
        ("A video for every row of shots.csv, into videos/", "wanvid batch shots.csv -d videos"),
        (
            "720P unless a row says otherwise, two rows at a time",
            'wanvid batch shots.csv -d videos --resolution 720P --name "{stem}-{row}.mp4" -j 2',
        ),
    ),
    "wanvid list": (
        ("The 20 most recent tasks of this profile and gateway", "wanvid list"),
        ("Unfinished tasks of every profile and gateway", "wanvid list --status unfinished --all"),
        ("Ask the gateway about the unfinished ones first", "wanvid list --status unfinished --refresh"),
    ),
    "wanvid sandbox": (
        ("Start the built-in gateway on http://127.0.0.1:8765", "wanvid sandbox"),
        ("Then, in another terminal, use it", "wanvid run cat.png --base-url http://127.0.0.1:8765 --api-key anything"),
        ("On a free port, refusing the next 3 calls with 429", "wanvid sandbox --port 0 --throttle 3"),
    ),
    "wanvid journal": (
        ("What would a prune drop?", "wanvid journal prune --dry-run"),
        (
            "Drop tasks older than 90 days, then shrink the file",
            "wanvid journal prune --older-than 90 && wanvid journal vacuum",
        ),
    ),
    "wanvid journal prune": (
        ("Count the tasks older than 30 days that would be dropped", "wanvid journal prune --dry-run"),
        ("Drop those older than a year", "wanvid journal prune --older-than 365"),
    ),
    "wanvid journal vacuum": (("Give the space a prune freed back to the disk", "wanvid journal vacuum"),),
    "wanvid config": (
        ("Store the API key (prompted, not echoed)", "wanvid config set-key"),
        ("Is the key good? (asks the gateway, free)", "wanvid config check"),
    ),
    "wanvid config set-key": (
        ("Store the key of the default profile (prompted, not echoed)", "wanvid config set-key"),
        ("Read it from a file or a pipe instead", "wanvid config set-key --stdin < key.txt"),
        ("Store the key of profile work", "wanvid config set-key --profile work"),
    ),
    "wanvid config set": (
        ("Use the built-in gateway unless told otherwise", "wanvid config set base_url http://127.0.0.1:8765"),
        (
            "720P videos of wan2.6-i2v unless a flag says otherwise",
            "wanvid config set model wan2.6-i2v && wanvid config set resolution 720P",
        ),
        ("Save videos in ~/videos when no -o is given", "wanvid config set output_dir ~/videos"),
    ),
    "wanvid config unset": (("Back to the default gateway", "wanvid config unset base_url"),),
    "wanvid config show": (
        ("Every setting and where it comes from", "wanvid config show"),
        ("What profile work would use", "wanvid config show --profile work"),
    ),
    "wanvid config get": (
        ("The model a create would use, for a script", "wanvid config get model"),
        ("The gateway, with where it comes from", "wanvid config get base_url --json"),
    ),
    "wanvid config check": (
        ("Is the key good, and which video models may it use? (free)", "wanvid config check"),
        ("The same for profile work, as JSON", "wanvid config check --profile work --json"),
    ),
    "wanvid config path": (("Where the config file is", "wanvid config path"),),
}


def help_text(path: str) -> str:
    """The examples of the command at ``path`` as the text of its help's Examples section ("" if none).

    Click rewraps help text by paragraphs; a paragraph whose first line is ``\\b`` keeps its lines, so each
    example (a comment saying what it does, then the command line) is one such paragraph."""
    return "\n\n".join(f"\b\n# {what}\n{line}" for what, line in EXAMPLES.get(path, ()))
