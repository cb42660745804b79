package redact

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// reference redacts in the obvious quadratic way: find every occurrence of
// every pattern, merge overlapping ones, replace each run by Mask.
func reference(input string, patterns []string) string {
	type iv struct{ s, e int }
	var ivs []iv
	for _, p := range patterns {
		if len(p) < MinLen {
			continue
		}
		for i := 0; i+len(p) <= len(input); i++ {
			if input[i:i+len(p)] == p {
				ivs = append(ivs, iv{i, i + len(p)})
			}
		}
	}
	sort.Slice(ivs, func(a, b int) bool { return ivs[a].s < ivs[b].s })
	var merged []iv
	for _, v := range ivs {
		if n := len(merged); n > 0 && v.s < merged[n-1].e {
			merged[n-1].e = max(merged[n-1].e, v.e)
			continue
		}
		merged = append(merged, v)
	}
	var b strings.Builder
	at := 0
	for _, v := range merged {
		b.WriteString(input[at:v.s])
		b.WriteString(Mask)
		at = v.e
	}
	b.WriteString(input[at:])
	return b.String()
}

// redactSplit writes input to a Writer in pieces cut at splits and flushes.
func redactSplit(t testing.TB, m *Matcher, input string, splits []int) string {
	var out bytes.Buffer
	w := NewWriter(&out, m)
	at := 0
	for _, s := range splits {
		if s < at || s > len(input) {
			continue
		}
		n, err := w.Write([]byte(input[at:s]))
		require.NoError(t, err)
		require.Equal(t, s-at, n)
		at = s
	}
	_, err := w.Write([]byte(input[at:]))
	require.NoError(t, err)
	require.NoError(t, w.Flush())
	return out.String()
}

// oneByte writes input one byte per Write.
func oneByte(t testing.TB, m *Matcher, input string) string {
	splits := make([]int, len(input))
	for i := range splits {
		splits[i] = i
	}
	return redactSplit(t, m, input, splits)
}

const sshKey = `-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACBxk3mZ0lD5dTqQ2m8o7nZ0m6h0t5yq0uUQe2c0b5Xl3AAAAJgAAAAAAAAA
AAAAAAtzc2gtZWQyNTUxOQAAACBxk3mZ0lD5dTqQ2m8o7nZ0m6h0t5yq0uUQe2c0b5Xl3A
AAAEDv9ZrN0x2o3s6wqkq1L8b2m8o7nZ0m6h0t5yq0uUQe2c0b5Xl3AAAAAA1rZ0BrZXkB
-----END OPENSSH PRIVATE KEY-----
`

func TestRedact(t *testing.T) {
	t.Parallel()
	tok := "s3cr3t-T0ken/+?&="
	for _, tc := range []struct {
		name    string
		secrets []string
		input   string
		want    string
	}{
		{"no secrets", nil, "hello s3cr3t", "hello s3cr3t"},
		{"raw", []string{tok}, "token: " + tok + "\n", "token: ***\n"},
		{"twice", []string{tok}, tok + tok + " " + tok, "****** ***"},
		{"base64 std", []string{tok}, "b64 " + base64.StdEncoding.EncodeToString([]byte(tok)) + "\n", "b64 ***\n"},
		{"base64 raw std", []string{tok}, "b64 " + base64.RawStdEncoding.EncodeToString([]byte(tok)) + ".", "b64 ***."},
		{"base64 url", []string{tok}, base64.URLEncoding.EncodeToString([]byte(tok)), "***"},
		{"base64 raw url", []string{tok}, "[" + base64.RawURLEncoding.EncodeToString([]byte(tok)) + "]", "[***]"},
		{"query escaped", []string{tok}, "?t=" + url.QueryEscape(tok), "?t=***"},
		{"path escaped", []string{tok}, "/x/" + url.PathEscape(tok) + "/y", "/x/***/y"},
		{"surrounding space of the secret", []string{"  padded-secret\n"}, "v=padded-secret;", "v=***;"},
		{"short secret is kept", []string{"abc"}, "abc abcd", "abc abcd"},
		{"empty secret", []string{""}, "anything", "anything"},
		{"overlapping secrets merge", []string{"abcdef", "defghi"}, "xabcdefghix", "x***x"},
		{"nested secrets", []string{"secret-outer-value", "outer"}, "a secret-outer-value outer", "a *** ***"},
		{"partial at the end is kept", []string{tok}, "x " + tok[:len(tok)-1], "x " + tok[:len(tok)-1]},
		{"prefix then full", []string{"aaab"}, "aaaab", "a***"},
		{"ssh key raw", []string{sshKey}, "key:\n" + sshKey + "done\n", "key:\n***done\n"},
		{"ssh key with crlf", []string{sshKey}, strings.ReplaceAll(sshKey, "\n", "\r\n"), "***"},
		{"ssh key line alone", []string{sshKey}, "line " + strings.Split(sshKey, "\n")[2] + " end",
			"line *** end"},
		{"ssh key printed with other line breaks", []string{sshKey}, strings.ReplaceAll(sshKey, "\n", "\n> "),
			"-----BEGIN OPENSSH PRIVATE KEY-----\n> ***\n> ***\n> ***\n> ***\n> -----END OPENSSH PRIVATE KEY-----\n> "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := New(tc.secrets)
			require.Equal(t, tc.want, m.Redact(tc.input), "whole")
			require.Equal(t, tc.want, oneByte(t, m, tc.input), "one byte per write")
			require.Equal(t, tc.want, redactSplit(t, m, tc.input, []int{1, 5, 6, 20, 21, 40}), "split")
		})
	}
}

func TestSkipped(t *testing.T) {
	t.Parallel()
	m := New([]string{"", "ab", "abc", "abcd"})
	require.Equal(t, 2, m.Skipped(), "empty secrets are not counted")
	require.False(t, m.Empty())
	require.True(t, New([]string{"abc"}).Empty())
	var nilM *Matcher
	require.True(t, nilM.Empty())
	var b bytes.Buffer
	w := NewWriter(&b, nilM)
	_, err := w.Write([]byte("x"))
	require.NoError(t, err)
	require.NoError(t, w.Flush())
	require.Equal(t, "x", b.String())
}

func TestForms(t *testing.T) {
	t.Parallel()
	forms := Forms("a b/c?")
	for _, want := range []string{"a b/c?", "YSBiL2M/", "YSBiL2M_", "a+b%2Fc%3F", "a%20b%2Fc%3F"} {
		require.Contains(t, forms, want)
	}
	require.Nil(t, Forms("abc"))
	lines := Forms(sshKey)
	require.NotContains(t, lines, "-----BEGIN OPENSSH PRIVATE KEY-----", "armor lines are not secret")
	require.Contains(t, lines, strings.Split(sshKey, "\n")[1])
}

// TestFlushBoundary: bytes held at a flush are released; a secret cannot
// straddle the flush (each side is redacted on its own).
func TestFlushBoundary(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	w := NewWriter(&b, New([]string{"topsecret"}))
	_, err := w.Write([]byte("a tops"))
	require.NoError(t, err)
	require.Equal(t, "a ", b.String(), "the possible start of a secret is held")
	require.NoError(t, w.Flush())
	require.Equal(t, "a tops", b.String())
	_, err = w.Write([]byte("ecret topsecret"))
	require.NoError(t, err)
	require.NoError(t, w.Flush())
	require.Equal(t, "a topsecret ***", b.String())
}

// TestHoldIsBounded: an endless run of overlapping matches is masked in
// pieces instead of being held in memory.
func TestHoldIsBounded(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	w := NewWriter(&b, New([]string{"aaaa"}))
	chunk := bytes.Repeat([]byte("a"), 4096)
	for range 100 {
		_, err := w.Write(chunk)
		require.NoError(t, err)
		require.LessOrEqual(t, len(w.pending), holdLimit+8+len(chunk))
	}
	require.NoError(t, w.Flush())
	require.NotContains(t, b.String(), "a")
	require.True(t, strings.HasPrefix(b.String(), Mask))
}

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

func TestWriteError(t *testing.T) {
	t.Parallel()
	w := NewWriter(errWriter{}, New([]string{"secret"}))
	_, err := w.Write([]byte("hello"))
	require.ErrorIs(t, err, io.ErrClosedPipe)
}

// TestRandom compares the Writer with the reference on random inputs over a
// small alphabet (many overlaps), cut at random points.
func TestRandom(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	word := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = "abc\n"[rng.IntN(4)]
		}
		return string(b)
	}
	for i := range 2000 {
		var pats []string
		for range 1 + rng.IntN(4) {
			pats = append(pats, word(1+rng.IntN(8)))
		}
		input := word(rng.IntN(200))
		var splits []int
		for range rng.IntN(10) {
			splits = append(splits, rng.IntN(len(input)+1))
		}
		slices.Sort(splits)
		m := NewPatterns(pats)
		want := reference(input, pats)
		require.Equal(t, want, redactSplit(t, m, input, splits), "case %d: patterns %q input %q splits %v", i, pats, input, splits)
		require.Equal(t, want, oneByte(t, m, input), "case %d one byte", i)
	}
}

func FuzzWriter(f *testing.F) {
	f.Add("s3cr3t", "other", "log s3cr3t and czNjcjN0 and s3cr\n3t", uint64(7))
	f.Add("aaaa", "aab", "aaaaaaab aab aaa", uint64(1))
	f.Add(sshKey, "tok3n", strings.ReplaceAll(sshKey, "\n", "\r\n")+"tok3n", uint64(3))
	f.Fuzz(func(t *testing.T, s1, s2, input string, seed uint64) {
		if len(input) > 4096 || len(s1) > 512 || len(s2) > 512 {
			return
		}
		secrets := []string{s1, s2}
		m := New(secrets)
		var pats []string
		for _, s := range secrets {
			pats = append(pats, Forms(s)...)
		}
		// Random cuts, including one byte at a time stretches.
		rng := rand.New(rand.NewPCG(seed, seed>>7))
		var splits []int
		for at := 0; at < len(input); {
			at += rng.IntN(8)
			splits = append(splits, at)
		}
		got := redactSplit(t, m, input, splits)
		if want := reference(input, pats); got != want {
			t.Fatalf("secrets %q input %q splits %v:\n got %q\nwant %q", secrets, input, splits, got, want)
		}
		// A secret can only reappear across a mask when it contains '*'.
		for _, s := range secrets {
			if len(s) >= MinLen && !strings.Contains(s, "*") && strings.Contains(got, s) {
				t.Fatalf("secret %q leaked: %q", s, got)
			}
		}
	})
}

func benchInput(size int) []byte {
	// Realistic build output: compiler lines, some hex, and a secret now
	// and then.
	var b bytes.Buffer
	rng := rand.New(rand.NewPCG(3, 4))
	for b.Len() < size {
		switch rng.IntN(20) {
		case 0:
			b.WriteString("export TOKEN=ghp_R4nd0mT0kenValue1234567890abcdefXYZ\n")
		case 1:
			fmt.Fprintf(&b, "sha256:%x%x\n", rng.Uint64(), rng.Uint64())
		default:
			fmt.Fprintf(&b, "[%4d/%4d] CC pkg/module%d/file_%d.o -O2 -Wall -Iinclude -DNDEBUG\n", rng.IntN(9999), 9999, rng.IntN(50), rng.IntN(500))
		}
	}
	return b.Bytes()[:size]
}

func BenchmarkWriter(b *testing.B) {
	secrets := []string{"ghp_R4nd0mT0kenValue1234567890abcdefXYZ", "hunter2-password", "AKIAIOSFODNN7EXAMPLE", sshKey}
	noise := make([]byte, 3<<20)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	inputs := []struct {
		name  string
		input []byte
	}{
		{"log", benchInput(4 << 20)},
		// Every byte may start a pattern: the worst case of the matcher.
		{"base64", []byte(base64.StdEncoding.EncodeToString(noise))},
	}
	for _, in := range inputs {
		for _, chunk := range []int{32 << 10, 64} {
			input := in.input
			b.Run(fmt.Sprintf("%s/chunk=%d", in.name, chunk), func(b *testing.B) {
				m := New(secrets)
				w := NewWriter(io.Discard, m)
				b.SetBytes(int64(len(input)))
				b.ResetTimer()
				cpu0 := cpuTime()
				n := 0
				for b.Loop() {
					n++
					for at := 0; at < len(input); at += chunk {
						if _, err := w.Write(input[at:min(at+chunk, len(input))]); err != nil {
							b.Fatal(err)
						}
					}
					if err := w.Flush(); err != nil {
						b.Fatal(err)
					}
				}
				// Throughput per CPU second: meaningful also on a loaded machine,
				// where MB/s (wall clock) is not.
				if d := cpuTime() - cpu0; d > 0 {
					b.ReportMetric(float64(n*len(input))/(1<<20)/d.Seconds(), "MiB/cpu-s")
				}
			})
		}
	}
	input := inputs[0].input
	b.Run("passthrough", func(b *testing.B) {
		w := NewWriter(io.Discard, New(nil))
		b.SetBytes(int64(len(input)))
		for b.Loop() {
			_, _ = w.Write(input)
		}
	})
}

// TestPeriodicIsLinear: a long periodic pattern kept almost matched does not
// make every byte cost the pattern's length.
func TestPeriodicIsLinear(t *testing.T) {
	t.Parallel()
	pat := strings.Repeat("a", 60<<10) + "b"
	m := NewPatterns([]string{pat})
	input := strings.Repeat("a", 4<<20)
	var out bytes.Buffer
	w := NewWriter(&out, m)
	for at := 0; at < len(input); at += 4096 {
		_, err := w.Write([]byte(input[at : at+4096]))
		require.NoError(t, err)
	}
	require.NoError(t, w.Flush())
	require.Equal(t, input, out.String())
	_, err := w.Write([]byte(pat))
	require.NoError(t, err)
	require.NoError(t, w.Flush())
	require.Equal(t, input+Mask, out.String())
}

// cpuTime is the CPU time the process used so far (user + system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
