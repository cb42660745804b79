def stage(ctx):
    # targets were written earlier in this flow by a `data` step in stage "Build"
    targets = ctx.flow.data.targets or ["staging"]
    jobs = []
    for t in targets:
        jobs.append({
            "name": "deploy %s" % t,
            "steps": [
                {"tool": "artifacts", "action": "download",
                 "source": "shop-#{flow.seq.own}.tar.gz", "destination": "pkg"},
                {"tool": "shell", "cmd": "./deploy.sh %s pkg" % t, "user": "root",
                 "attempts": 3, "sleep_time_after_attempt": 20, "timeout": 900,
                 "ssh-key": "deploy_key"},
                {"tool": "shell", "cmd": "./smoke.sh %s > report/index.html" % t},
                {"tool": "artifacts", "source": ["report/index.html", "report/style.css"],
                 "report_entry": "report/index.html"},
                {"tool": "data", "operation": "jq", "scope": "branch-ci",
                 "value": ".deploys.%s += 1" % t},
                {"tool": "shell", "name": "always clean", "cmd": "./cleanup.sh",
                 "when": "always"},
            ],
            "environments": [{"agents_group": "deployers", "system": "any",
                              "config": "default"}],
        })
    return {
        "parent": "Build",
        "triggers": {"manual": True},      # the run waits in 'manual' state until a user starts it
        "parameters": [],
        "jobs": jobs,
        "notification": {"email": "ops@acme.example",
                         "discord": {"webhook": "#{secrets.discord_hook}"}},
    }
