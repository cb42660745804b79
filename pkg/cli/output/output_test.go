package output_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/cli/iostreams"
	"github.com/kraken-go/kk/pkg/cli/output"
)

func TestParseFormat(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]output.Format{"": output.Table, "table": output.Table, "json": output.JSON, "yaml": output.YAML} {
		got, err := output.ParseFormat(in)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	_, err := output.ParseFormat("xml")
	assert.ErrorContains(t, err, "want table, json or yaml")
}

func TestWriteYAMLKeepsOrderAndTypes(t *testing.T) {
	t.Parallel()
	v := struct {
		ID      int64             `json:"id"`
		Name    string            `json:"name"`
		Numeric string            `json:"numeric"`
		Bool    string            `json:"bool"`
		Empty   []string          `json:"empty"`
		Nil     *int              `json:"nil"`
		Nested  map[string]string `json:"nested"`
		Multi   string            `json:"multi"`
	}{ID: 7, Name: "a: b", Numeric: "123", Bool: "true", Empty: []string{}, Nested: map[string]string{"k": "v"}, Multi: "x\ny"}
	var b bytes.Buffer
	require.NoError(t, output.Write(&b, output.YAML, v))
	assert.Equal(t, `id: 7
name: 'a: b'
numeric: "123"
bool: "true"
empty: []
nil: null
nested:
  k: v
multi: |-
  x
  y
`, b.String())
}

func TestWriteJSONIndented(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	require.NoError(t, output.Write(&b, output.JSON, map[string]int{"id": 1}))
	assert.Equal(t, "{\n  \"id\": 1\n}\n", b.String())
}

func TestTableAlignsAndColoursOnlyOnTTY(t *testing.T) {
	t.Parallel()
	render := func(tty, noColor bool) string {
		ios, _, out, _ := iostreams.Test()
		ios.SetStdoutTTY(tty)
		ios.SetNoColor(noColor)
		tp := output.NewTable(ios, "id", "state")
		tp.AddField("1")
		tp.AddColorField("failed", output.StateColor("failed"))
		tp.EndRow()
		tp.AddField("100")
		tp.AddField("")
		tp.EndRow()
		require.NoError(t, tp.Render())
		return out.String()
	}
	plain := "ID   STATE\n1    failed\n100  -\n"
	assert.Equal(t, plain, render(false, false))
	assert.Equal(t, plain, render(true, true), "NO_COLOR")
	assert.Equal(t, "\x1b[1mID\x1b[0m   \x1b[1mSTATE\x1b[0m\n1    \x1b[31mfailed\x1b[0m\n100  -\n", render(true, false))
}

func TestTime(t *testing.T) {
	t.Parallel()
	ios, _, _, _ := iostreams.Test()
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	assert.Equal(t, "2026-01-02T03:04:05Z", output.Time(ios, ts))
	assert.Equal(t, "", output.Time(ios, time.Time{}))
	assert.Equal(t, "", output.TimePtr(ios, nil))
	ios.SetStdoutTTY(true)
	assert.Equal(t, "3m ago", output.Time(ios, time.Now().Add(-3*time.Minute-time.Second)))
	assert.Equal(t, "3d ago", output.Ago(75*time.Hour))
	assert.Equal(t, "3.2s", output.Duration(3.2))
	assert.Equal(t, "1m5s", output.Duration(65.4))
	assert.Equal(t, "", output.Duration(0))
}
