def stage(ctx):
    # the matrix is smaller on DEV (pre-commit) flows
    if ctx.is_ci:
        images = ["golang:1.22", "golang:1.21"]
    else:
        images = ["golang:1.22"]

    return {
        "parent": "root",
        "triggers": {
            "cron": "0 2 * * *",                       # nightly at 02:00 UTC
            "repo": {"url": "https://github.com/acme/shop.git",
                     "branch": "main", "interval": "15m"},
        },
        "parameters": [{
            "name": "race", "type": "string", "default": "no",
            "description": "Run tests with -race (yes/no)",
        }],
        "flow_label": "shop-#{flow.seq.own}",
        "run_label": "build.#{run.seq.own}",
        "jobs": [{
            "name": "unit tests",
            "timeout": 1800,
            "steps": [
                {"tool": "git", "checkout": "https://github.com/acme/shop.git",
                 "branch": "main", "access-token": "gh_token"},
                {"tool": "cache", "action": "restore", "keys": ["gomod-#{branch.branch_name}"]},
                {"tool": "gotest", "cwd": "shop",
                 "params": "-race ./..." if ctx.args.race == "yes" else "./...",
                 "timeout": 1500},
                {"tool": "cache", "action": "save", "key": "gomod-#{branch.branch_name}",
                 "paths": ["$GOPATH/pkg/mod"], "when": "was_no_error and is_ci"},
                {"tool": "shell", "name": "collect junk", "cmd": "ls -al shop",
                 "when": "was_any_error"},
            ],
            "environments": [{"agents_group": "docker", "executor": "docker",
                              "system": images, "config": "default"}],
        }, {
            "name": "package",
            "steps": [
                {"tool": "git", "checkout": "https://github.com/acme/shop.git", "branch": "main"},
                {"tool": "shell", "cwd": "shop",
                 "script": "make dist VERSION=#{flow.label}\nls -l dist",
                 "env": {"SIGNING_KEY": "#{secrets.signing_key}"}, "timeout": 600},
                {"tool": "artifacts", "cwd": "shop/dist", "source": ["*.tar.gz"]},
            ],
            "environments": [{"agents_group": "all", "system": "ubuntu-22.04",
                              "config": "default"}],
        }],
        "notification": {
            "slack": {"channel": "shop-ci"},
            "github": {"credentials": "#{secrets.gh_status_creds}"},
        },
    }
