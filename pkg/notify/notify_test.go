package notify

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHub(t *testing.T) {
	t.Parallel()
	h := New()
	a, unA := h.Subscribe("k")
	b, unB := h.Subscribe("k")
	other, unO := h.Subscribe("x")
	defer unO()
	h.Publish("k")
	h.Publish("k") // coalesces
	<-a
	<-b
	select {
	case <-a:
		t.Fatal("signals must coalesce")
	case <-other:
		t.Fatal("other key must not be woken")
	default:
	}
	unA()
	require.Equal(t, 1, h.Subscribers("k"))
	unB()
	require.Equal(t, 0, h.Subscribers("k"))
	h.Publish("k") // no subscribers: no panic, no block
}
