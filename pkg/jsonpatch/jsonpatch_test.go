package jsonpatch

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func apply(t *testing.T, doc, patch string) (string, error) {
	t.Helper()
	d, err := Decode([]byte(doc))
	require.NoError(t, err)
	ops, err := ParsePatch([]byte(patch))
	if err != nil {
		return "", err
	}
	out, err := Apply(d, ops)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(out)
	require.NoError(t, err)
	// The input is never modified.
	again, err := json.Marshal(d)
	require.NoError(t, err)
	require.JSONEq(t, doc, string(again))
	return string(b), nil
}

// TestRFC6902Examples runs the examples of RFC 6902, appendix A.
func TestRFC6902Examples(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, doc, patch, want, err string
	}{
		{"A.1 add an object member", `{"foo":"bar"}`, `[{"op":"add","path":"/baz","value":"qux"}]`, `{"baz":"qux","foo":"bar"}`, ""},
		{"A.2 add an array element", `{"foo":["bar","baz"]}`, `[{"op":"add","path":"/foo/1","value":"qux"}]`, `{"foo":["bar","qux","baz"]}`, ""},
		{"A.3 remove an object member", `{"baz":"qux","foo":"bar"}`, `[{"op":"remove","path":"/baz"}]`, `{"foo":"bar"}`, ""},
		{"A.4 remove an array element", `{"foo":["bar","qux","baz"]}`, `[{"op":"remove","path":"/foo/1"}]`, `{"foo":["bar","baz"]}`, ""},
		{"A.5 replace a value", `{"baz":"qux","foo":"bar"}`, `[{"op":"replace","path":"/baz","value":"boo"}]`, `{"baz":"boo","foo":"bar"}`, ""},
		{"A.6 move a value", `{"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}`,
			`[{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]`,
			`{"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}}`, ""},
		{"A.7 move an array element", `{"foo":["all","grass","cows","eat"]}`, `[{"op":"move","from":"/foo/1","path":"/foo/3"}]`,
			`{"foo":["all","cows","eat","grass"]}`, ""},
		{"A.8 test a value: success", `{"baz":"qux","foo":["a",2,"c"]}`,
			`[{"op":"test","path":"/baz","value":"qux"},{"op":"test","path":"/foo/1","value":2}]`, `{"baz":"qux","foo":["a",2,"c"]}`, ""},
		{"A.9 test a value: error", `{"baz":"qux"}`, `[{"op":"test","path":"/baz","value":"bar"}]`, "", "test failed"},
		{"A.10 add a nested member object", `{"foo":"bar"}`, `[{"op":"add","path":"/child","value":{"grandchild":{}}}]`,
			`{"foo":"bar","child":{"grandchild":{}}}`, ""},
		{"A.11 ignore unrecognized elements", `{"foo":"bar"}`, `[{"op":"add","path":"/baz","value":"qux","xyz":123}]`, "", "unknown field"},
		{"A.12 add to a nonexistent target", `{"foo":"bar"}`, `[{"op":"add","path":"/baz/bat","value":"qux"}]`, "", "does not exist"},
		{"A.13 invalid JSON patch document", `{"foo":"bar"}`, `[{"op":"add","path":"/baz","value":"qux","op":"remove"}]`, "", "does not exist"}, // encoding/json keeps the last "op": a remove of a missing member, which fails
		{"A.14 ~ escape ordering", `{"/":9,"~1":10}`, `[{"op":"test","path":"/~01","value":10}]`, `{"/":9,"~1":10}`, ""},
		{"A.15 comparing strings and numbers", `{"/":9,"~1":10}`, `[{"op":"test","path":"/~01","value":"10"}]`, "", "test failed"},
		{"A.16 add an array value", `{"foo":["bar"]}`, `[{"op":"add","path":"/foo/-","value":["abc","def"]}]`, `{"foo":["bar",["abc","def"]]}`, ""},
		// Beyond the appendix.
		{"replace the root", `{"a":1}`, `[{"op":"replace","path":"","value":[1]}]`, `[1]`, ""},
		{"copy", `{"a":{"b":1}}`, `[{"op":"copy","from":"/a","path":"/c"}]`, `{"a":{"b":1},"c":{"b":1}}`, ""},
		{"numbers compare by value", `{"n":1.0}`, `[{"op":"test","path":"/n","value":1}]`, `{"n":1.0}`, ""},
		{"move into own child", `{"a":{"b":1}}`, `[{"op":"move","from":"/a","path":"/a/b/c"}]`, "", "own child"},
		{"failed op applies nothing", `{"a":1}`, `[{"op":"add","path":"/b","value":2},{"op":"remove","path":"/zz"}]`, "", "does not exist"},
		{"index out of range", `{"a":[1]}`, `[{"op":"add","path":"/a/5","value":2}]`, "", "out of range"},
		{"leading zero index", `{"a":[1,2]}`, `[{"op":"remove","path":"/a/01"}]`, "", "not an array index"},
		{"unknown op", `{}`, `[{"op":"merge","path":"/a"}]`, "", "unknown op"},
		{"no path", `{}`, `[{"op":"remove"}]`, "", "no path"},
		{"bad pointer", `{}`, `[{"op":"remove","path":"a"}]`, "", "must be empty or start with"},
		{"bad escape", `{}`, `[{"op":"remove","path":"/a~2"}]`, "", "followed by 0 or 1"},
		{"not an array", `{"foo":"bar"}`, `{"op":"add"}`, "", "JSON array"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := apply(t, tc.doc, tc.patch)
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				assert.True(t, errors.Is(err, ErrPatch), "errors wrap ErrPatch")
				return
			}
			require.NoError(t, err)
			assert.JSONEq(t, tc.want, got)
		})
	}
}

func TestSetAndGet(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, doc, ptr, value, want, err string
	}{
		{"replace root", `{"a":1}`, "", `[2]`, `[2]`, ""},
		{"member", `{"a":1}`, "/b", `2`, `{"a":1,"b":2}`, ""},
		{"creates parents", `{"a":1}`, "/x/y/z", `true`, `{"a":1,"x":{"y":{"z":true}}}`, ""},
		{"null document", `null`, "/x", `1`, `{"x":1}`, ""},
		{"overwrites", `{"x":{"y":1}}`, "/x/y", `"s"`, `{"x":{"y":"s"}}`, ""},
		{"array element append", `{"l":[1]}`, "/l/-", `2`, `{"l":[1,2]}`, ""},
		{"inside a string", `{"s":"x"}`, "/s/t", `1`, "", "inside a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, err := Decode([]byte(tc.doc))
			require.NoError(t, err)
			v, err := Decode([]byte(tc.value))
			require.NoError(t, err)
			out, err := Set(d, tc.ptr, v)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			b, err := json.Marshal(out)
			require.NoError(t, err)
			assert.JSONEq(t, tc.want, string(b))
			if tc.ptr != "/l/-" {
				got, err := Get(out, tc.ptr)
				require.NoError(t, err)
				assert.True(t, Equal(v, got))
			}
		})
	}
	d, _ := Decode([]byte(`{"a":[{"b":"c"}]}`))
	v, err := Get(d, "/a/0/b")
	require.NoError(t, err)
	assert.Equal(t, "c", v)
	_, err = Get(d, "/a/1")
	require.ErrorContains(t, err, "out of range")
	_, err = Get(d, "/nope")
	require.ErrorContains(t, err, "no member")
	_, err = Decode([]byte(`{} {}`))
	require.Error(t, err)
}

// FuzzApply checks that no patch panics, that the input is never modified
// and that results are valid JSON.
func FuzzApply(f *testing.F) {
	f.Add(`{"foo":["bar","baz"]}`, `[{"op":"add","path":"/foo/1","value":"qux"}]`)
	f.Add(`{"foo":{"bar":"baz","waldo":"fred"}}`, `[{"op":"move","from":"/foo/waldo","path":"/qux"}]`)
	f.Add(`{"/":9,"~1":10}`, `[{"op":"test","path":"/~01","value":10}]`)
	f.Add(`[1,2,3]`, `[{"op":"remove","path":"/1"},{"op":"copy","from":"/0","path":"/-"}]`)
	f.Fuzz(func(t *testing.T, doc, patch string) {
		d, err := Decode([]byte(doc))
		if err != nil {
			return
		}
		before, err := json.Marshal(d)
		if err != nil {
			return
		}
		ops, err := ParsePatch([]byte(patch))
		if err != nil {
			return
		}
		out, err := Apply(d, ops)
		after, merr := json.Marshal(d)
		require.NoError(t, merr)
		require.Equal(t, string(before), string(after), "the input was modified")
		if err != nil {
			require.ErrorIs(t, err, ErrPatch)
			return
		}
		b, err := json.Marshal(out)
		require.NoError(t, err)
		require.True(t, json.Valid(b))
	})
}
