package schema

// Instances expands jobs × environments × systems into job instances, in
// order (job order, then environment, then system). A zero job timeout
// becomes DefaultJobTimeout and an empty executor "local". Each instance gets
// its own copy of the steps, so callers may interpolate them in place.
func (s *Stage) Instances() []JobInstance {
	var out []JobInstance
	for _, job := range s.Jobs {
		timeout := job.Timeout
		if timeout <= 0 {
			timeout = DefaultJobTimeout
		}
		for _, env := range job.Environments {
			executor := env.Executor
			if executor == "" {
				executor = "local"
			}
			for _, system := range env.System {
				out = append(out, JobInstance{
					Name:            job.Name,
					Timeout:         timeout,
					ExplicitTimeout: job.Timeout > 0,
					Group:           env.AgentsGroup,
					System:          system,
					Executor:        executor,
					Network:         env.Network,
					Steps:           cloneSteps(job.Steps),
				})
			}
		}
	}
	return out
}

// Args returns the flow arguments of this stage: the parameters' defaults,
// overridden by given. It is what ctx.args and #{args.X} should see.
func (s *Stage) Args(given map[string]string) map[string]string {
	out := make(map[string]string, len(given)+len(s.Parameters))
	for _, p := range s.Parameters {
		out[p.Name] = p.Default
	}
	for k, v := range given {
		out[k] = v
	}
	return out
}

func cloneSteps(steps []Step) []Step {
	out := make([]Step, len(steps))
	for i, st := range steps {
		out[i] = Step(cloneMap(st))
	}
	return out
}

// cloneValue deep-copies the JSON-like values of a validated stage.
func cloneValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return cloneMap(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = cloneValue(e)
		}
		return out
	}
	return v
}

func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = cloneValue(v)
	}
	return out
}
