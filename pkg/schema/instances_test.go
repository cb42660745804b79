package schema

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInstances(t *testing.T) {
	t.Parallel()
	steps := []Step{{"tool": "shell", "cmd": "make"}}
	tests := []struct {
		name  string
		stage Stage
		want  []JobInstance
	}{
		{name: "no jobs", stage: Stage{}, want: nil},
		{
			name: "defaults",
			stage: Stage{Jobs: []Job{{Name: "a", Steps: steps,
				Environments: []Environment{{AgentsGroup: "all", System: []string{"any"}}}}}},
			want: []JobInstance{{Name: "a", Timeout: DefaultJobTimeout, Group: "all", System: "any", Executor: "local", Steps: steps}},
		},
		{
			name: "jobs × environments × systems in order",
			stage: Stage{Jobs: []Job{
				{Name: "a", Timeout: 600, Steps: steps, Environments: []Environment{
					{AgentsGroup: "docker", System: []string{"go1.22", "go1.21"}, Executor: "docker"},
					{AgentsGroup: "lxd", System: []string{"ubuntu"}, Executor: "lxd"},
				}},
				{Name: "b", Steps: steps, Environments: []Environment{
					{AgentsGroup: "all", System: []string{"x", "y"}},
				}},
			}},
			want: []JobInstance{
				{Name: "a", Timeout: 600, ExplicitTimeout: true, Group: "docker", System: "go1.22", Executor: "docker", Steps: steps},
				{Name: "a", Timeout: 600, ExplicitTimeout: true, Group: "docker", System: "go1.21", Executor: "docker", Steps: steps},
				{Name: "a", Timeout: 600, ExplicitTimeout: true, Group: "lxd", System: "ubuntu", Executor: "lxd", Steps: steps},
				{Name: "b", Timeout: DefaultJobTimeout, Group: "all", System: "x", Executor: "local", Steps: steps},
				{Name: "b", Timeout: DefaultJobTimeout, Group: "all", System: "y", Executor: "local", Steps: steps},
			},
		},
		{
			name:  "environment without systems yields nothing",
			stage: Stage{Jobs: []Job{{Name: "a", Environments: []Environment{{AgentsGroup: "all"}}}}},
			want:  nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, tt.stage.Instances())
		})
	}
}

func TestInstancesCopySteps(t *testing.T) {
	t.Parallel()
	st, err := Eval(context.Background(), "s.py", []byte(wrap(`{"tool": "shell", "cmd": "a", "env": {"K": "v"}}`)), Context{}, Limits{})
	require.NoError(t, err)
	inst := st.Instances()
	require.Len(t, inst, 1)
	inst[0].Steps[0]["cmd"] = "changed"
	inst[0].Steps[0]["env"].(map[string]any)["K"] = "changed"
	assert.Equal(t, "a", st.Jobs[0].Steps[0]["cmd"])
	assert.Equal(t, "v", st.Jobs[0].Steps[0]["env"].(map[string]any)["K"])
}

func TestStageArgs(t *testing.T) {
	t.Parallel()
	st := Stage{Parameters: []Parameter{{Name: "a", Default: "1"}, {Name: "b", Default: "2"}}}
	assert.Equal(t, map[string]string{"a": "1", "b": "9", "c": "3"}, st.Args(map[string]string{"b": "9", "c": "3"}))
	assert.Equal(t, map[string]string{"a": "1", "b": "2"}, st.Args(nil))
}
