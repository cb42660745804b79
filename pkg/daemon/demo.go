package daemon

// The demo project created on a fresh data dir, so `kk flow run demo/main`
// works right after the first start.
const (
	demoProject = "demo"
	demoBranch  = "main"
)

var demoStages = []struct{ name, code string }{
	{"build", `# A Kraken stage: a root stage with a parameter, a one-line command and a script.
def stage(ctx):
    return {
        "parent": "root",
        "triggers": {"parent": True},
        "parameters": [{"name": "greeting", "type": "string", "default": "hello",
                        "description": "what the first step prints"}],
        "flow_label": "demo-#{flow.seq.own}",
        "jobs": [{
            "name": "build",
            "timeout": 300,
            "steps": [
                {"tool": "shell", "name": "greet",
                 "cmd": "echo '#{args.greeting} from %s flow #{flow.seq.own}'" % ("CI" if ctx.is_ci else "DEV")},
                {"tool": "shell", "name": "compile", "script": """
for part in parser planner runner; do
  echo "building $part"
  sleep 1
done
echo "built on $(uname -sm)"
"""},
            ],
            "environments": [{"agents_group": "all", "system": "any", "config": "default"}],
        }],
    }
`},
	{"test", `# A child stage: it starts when "build" completes without job errors.
def stage(ctx):
    return {
        "parent": "build",
        "triggers": {"parent": True},
        "jobs": [{
            "name": "unit tests",
            "steps": [
                {"tool": "shell", "name": "run tests", "cmd": "for t in a b c; do echo \"test_$t ... ok\"; done"},
                {"tool": "shell", "name": "clean up", "cmd": "echo cleaning up", "when": "always"},
            ],
            "environments": [{"agents_group": "all", "system": "any", "config": "default"}],
        }],
    }
`},
}
