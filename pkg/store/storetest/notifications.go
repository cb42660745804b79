package storetest

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

func notificationCases() []testCase {
	return []testCase{
		{"claim once, record the result, list in order", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			r := f.run(f.newFlow().ID, "build")
			list, err := s.ListNotifications(f.ctx, r.ID)
			require.NoError(t, err)
			require.Empty(t, list)

			ok, err := s.ClaimNotification(f.ctx, ci.Notification{RunID: r.ID, Event: ci.NotifyStart, Channel: "github"})
			require.NoError(t, err)
			require.True(t, ok)
			ok, err = s.ClaimNotification(f.ctx, ci.Notification{RunID: r.ID, Event: ci.NotifyStart, Channel: "github"})
			require.NoError(t, err)
			require.False(t, ok, "a second claim of the same notification loses")
			ok, err = s.ClaimNotification(f.ctx, ci.Notification{RunID: r.ID, Event: ci.NotifyEnd, Channel: "github"})
			require.NoError(t, err)
			require.True(t, ok, "another event is another notification")
			ok, err = s.ClaimNotification(f.ctx, ci.Notification{RunID: r.ID, Event: ci.NotifyEnd, Channel: "email"})
			require.NoError(t, err)
			require.True(t, ok)
			ok, err = s.ClaimNotification(f.ctx, ci.Notification{RunID: r.ID, Event: ci.NotifyEnd, Round: 7, Channel: "email"})
			require.NoError(t, err)
			require.True(t, ok, "another round (a rerun's end) is another notification")
			require.NoError(t, s.SetNotificationResult(f.ctx, ci.Notification{RunID: r.ID, Event: ci.NotifyEnd, Round: 7, Channel: "email", State: ci.NotifySkipped, Message: "x"}))

			require.NoError(t, s.SetNotificationResult(f.ctx, ci.Notification{RunID: r.ID, Event: ci.NotifyStart, Channel: "github", State: ci.NotifySent, Message: "pending on abc"}))
			require.NoError(t, s.SetNotificationResult(f.ctx, ci.Notification{RunID: r.ID, Event: ci.NotifyEnd, Channel: "email", State: ci.NotifyFailed, Message: "smtp: refused"}))
			require.ErrorIs(t, s.SetNotificationResult(f.ctx, ci.Notification{RunID: r.ID, Event: ci.NotifyStart, Channel: "slack", State: ci.NotifySent, Message: ""}), ci.ErrNotFound)

			list, err = s.ListNotifications(f.ctx, r.ID)
			require.NoError(t, err)
			require.Len(t, list, 4)
			require.Equal(t, ci.Notification{RunID: r.ID, Event: ci.NotifyStart, Channel: "github", State: ci.NotifySent, Message: "pending on abc",
				Created: list[0].Created, Updated: list[0].Updated}, list[0])
			require.False(t, list[0].Created.IsZero())
			require.Equal(t, ci.NotifyEnd, list[1].Event)
			require.Equal(t, ci.NotifySending, list[1].State)
			require.Equal(t, "email", list[2].Channel)
			require.Equal(t, ci.NotifyFailed, list[2].State)
			require.Equal(t, "smtp: refused", list[2].Message)
			require.Equal(t, int64(7), list[3].Round)
			require.Equal(t, ci.NotifySkipped, list[3].State)
		}},
		{"claim of a missing run; deleted with the run", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			_, err := s.ClaimNotification(f.ctx, ci.Notification{RunID: 987654, Event: ci.NotifyEnd, Channel: "email"})
			require.ErrorIs(t, err, ci.ErrNotFound)
			fl := f.newFlow()
			r := f.run(fl.ID, "build")
			ok, err := s.ClaimNotification(f.ctx, ci.Notification{RunID: r.ID, Event: ci.NotifyEnd, Channel: "email"})
			require.NoError(t, err)
			require.True(t, ok)
			b, err := s.GetBranch(f.ctx, fl.BranchID)
			require.NoError(t, err)
			require.NoError(t, s.DeleteProject(f.ctx, b.ProjectID))
			list, err := s.ListNotifications(f.ctx, r.ID)
			require.NoError(t, err)
			require.Empty(t, list)
		}},
		{"concurrent claims: one wins", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			r := f.run(f.newFlow().ID, "build")
			var won atomic.Int32
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					ok, err := s.ClaimNotification(f.ctx, ci.Notification{RunID: r.ID, Event: ci.NotifyEnd, Channel: "github"})
					require.NoError(t, err)
					if ok {
						won.Add(1)
					}
				})
			}
			wg.Wait()
			require.Equal(t, int32(1), won.Load())
		}},
	}
}
