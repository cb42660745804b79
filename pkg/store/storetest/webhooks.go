package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

func webhookCases() []testCase {
	return []testCase{
		{"secret: first put wins, replace rotates", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			p := f.project()
			_, err := s.GetWebhookSecret(f.ctx, p.ID)
			require.ErrorIs(t, err, ci.ErrNotFound)

			got, err := s.PutWebhookSecret(f.ctx, p.ID, []byte("one"), false)
			require.NoError(t, err)
			require.Equal(t, "one", string(got))
			got, err = s.PutWebhookSecret(f.ctx, p.ID, []byte("two"), false)
			require.NoError(t, err)
			require.Equal(t, "one", string(got), "without replace the existing secret stays")
			got, err = s.PutWebhookSecret(f.ctx, p.ID, []byte("three"), true)
			require.NoError(t, err)
			require.Equal(t, "three", string(got))
			got, err = s.GetWebhookSecret(f.ctx, p.ID)
			require.NoError(t, err)
			require.Equal(t, "three", string(got))

			_, err = s.PutWebhookSecret(f.ctx, p.ID, nil, true)
			require.ErrorIs(t, err, ci.ErrInvalid)
			_, err = s.PutWebhookSecret(f.ctx, p.ID+1000, []byte("x"), false)
			require.ErrorIs(t, err, ci.ErrNotFound)

			require.NoError(t, s.DeleteProject(f.ctx, p.ID))
			_, err = s.GetWebhookSecret(f.ctx, p.ID)
			require.ErrorIs(t, err, ci.ErrNotFound)
		}},
		{"secret: concurrent first puts agree", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			p := f.project()
			const n = 8
			got := make([]string, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					v, err := s.PutWebhookSecret(f.ctx, p.ID, []byte{byte('a' + i)}, false)
					got[i], errs[i] = string(v), err
				})
			}
			wg.Wait()
			for i := range n {
				require.NoError(t, errs[i])
				require.Equal(t, got[0], got[i])
			}
		}},
		{"deliveries: a repeated id conflicts", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			b := f.newBranch()
			fl := f.flow(b.ID, ci.FlowCI)

			d := store.Delivery{ProjectID: b.ProjectID, Forge: "github", DeliveryID: "abc-1", Event: "push"}
			require.NoError(t, s.RecordDelivery(f.ctx, &d))
			require.NotZero(t, d.ID)
			requireRecent(t, d.Received)
			require.NoError(t, s.SetDeliveryResult(f.ctx, d.ID, []int64{fl.ID}, ""))

			dup := store.Delivery{ProjectID: b.ProjectID, Forge: "github", DeliveryID: "abc-1", Event: "push"}
			require.ErrorIs(t, s.RecordDelivery(f.ctx, &dup), ci.ErrConflict)
			// The same id from another forge or for another project is another delivery.
			other := store.Delivery{ProjectID: b.ProjectID, Forge: "gitea", DeliveryID: "abc-1"}
			require.NoError(t, s.RecordDelivery(f.ctx, &other))
			p2 := f.project()
			elsewhere := store.Delivery{ProjectID: p2.ID, Forge: "github", DeliveryID: "abc-1"}
			require.NoError(t, s.RecordDelivery(f.ctx, &elsewhere))

			got, err := s.GetDelivery(f.ctx, b.ProjectID, "github", "abc-1")
			require.NoError(t, err)
			d.FlowID, d.FlowIDs, d.Outcome = fl.ID, []int64{fl.ID}, "started"
			require.Equal(t, d, got)

			require.NoError(t, s.SetDeliveryResult(f.ctx, other.ID, nil, "no branch tracks refs/heads/x"))
			got, err = s.GetDelivery(f.ctx, b.ProjectID, "gitea", "abc-1")
			require.NoError(t, err)
			require.Zero(t, got.FlowID)
			require.Empty(t, got.FlowIDs)
			require.Empty(t, got.Outcome, "no flow: the outcome stays as recorded")
			require.Equal(t, "no branch tracks refs/heads/x", got.Note)

			require.NoError(t, s.DeleteDelivery(f.ctx, other.ID))
			require.ErrorIs(t, s.DeleteDelivery(f.ctx, other.ID), ci.ErrNotFound)
			require.NoError(t, s.RecordDelivery(f.ctx, &other), "a deleted delivery can be received again")
			require.ErrorIs(t, s.SetDeliveryResult(f.ctx, other.ID+1000, nil, ""), ci.ErrNotFound)
			_, err = s.GetDelivery(f.ctx, b.ProjectID, "gitlab", "abc-1")
			require.ErrorIs(t, err, ci.ErrNotFound)
		}},
		{"deliveries: outcome, flows, duplicates, list, delete old", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			b := f.newBranch()
			fl1, fl2 := f.flow(b.ID, ci.FlowCI), f.flow(b.ID, ci.FlowCI)
			p2 := f.project()

			none := store.Delivery{ProjectID: b.ProjectID, Forge: "github", DeliveryID: "d-1", Event: "push", Outcome: "no_branch", Note: "no branch tracks main"}
			require.NoError(t, s.RecordDelivery(f.ctx, &none))
			started := store.Delivery{ProjectID: b.ProjectID, Forge: "gitea", DeliveryID: "d-2", Event: "push"}
			require.NoError(t, s.RecordDelivery(f.ctx, &started))
			require.NoError(t, s.SetDeliveryResult(f.ctx, started.ID, []int64{fl1.ID, fl2.ID}, "branch x: boom"))
			elsewhere := store.Delivery{ProjectID: p2.ID, Forge: "github", DeliveryID: "d-3", Outcome: "ignored"}
			require.NoError(t, s.RecordDelivery(f.ctx, &elsewhere))

			require.NoError(t, s.AddDeliveryDuplicate(f.ctx, b.ProjectID, "gitea", "d-2"))
			require.NoError(t, s.AddDeliveryDuplicate(f.ctx, b.ProjectID, "gitea", "d-2"))
			require.ErrorIs(t, s.AddDeliveryDuplicate(f.ctx, b.ProjectID, "github", "d-2"), ci.ErrNotFound)
			require.ErrorIs(t, s.AddDeliveryDuplicate(f.ctx, p2.ID, "gitea", "d-2"), ci.ErrNotFound)

			list, err := s.ListDeliveries(f.ctx, b.ProjectID, 0)
			require.NoError(t, err)
			require.Len(t, list, 2, "only the project's deliveries")
			require.Equal(t, "d-2", list[0].DeliveryID, "newest first")
			require.Equal(t, "started", list[0].Outcome)
			require.Equal(t, []int64{fl1.ID, fl2.ID}, list[0].FlowIDs)
			require.Equal(t, fl1.ID, list[0].FlowID)
			require.Equal(t, 2, list[0].Duplicates)
			require.Equal(t, "branch x: boom", list[0].Note)
			requireRecent(t, list[0].Received)
			require.Equal(t, none.ID, list[1].ID)
			require.Equal(t, "no_branch", list[1].Outcome)
			require.Empty(t, list[1].FlowIDs)
			require.Zero(t, list[1].Duplicates)
			list, err = s.ListDeliveries(f.ctx, b.ProjectID, 1)
			require.NoError(t, err)
			require.Len(t, list, 1)
			require.Equal(t, "d-2", list[0].DeliveryID)

			n, err := s.DeleteDeliveriesBefore(f.ctx, time.Now().Add(-time.Hour), 10)
			require.NoError(t, err)
			require.Zero(t, n, "recent deliveries are kept")
			n, err = s.DeleteDeliveriesBefore(f.ctx, time.Now().Add(time.Hour), 2)
			require.NoError(t, err)
			require.Equal(t, 2, n, "at most limit")
			n, err = s.DeleteDeliveriesBefore(f.ctx, time.Now().Add(time.Hour), 2)
			require.NoError(t, err)
			require.Equal(t, 1, n)
			list, err = s.ListDeliveries(f.ctx, b.ProjectID, 0)
			require.NoError(t, err)
			require.Empty(t, list)
			require.NoError(t, s.RecordDelivery(f.ctx, &started), "a deleted delivery id can be received again")
		}},
		{"deliveries: invalid, missing project, deleted flow and project", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			b := f.newBranch()
			require.ErrorIs(t, s.RecordDelivery(f.ctx, &store.Delivery{ProjectID: b.ProjectID, Forge: "github"}), ci.ErrInvalid)
			require.ErrorIs(t, s.RecordDelivery(f.ctx, &store.Delivery{ProjectID: b.ProjectID + 1000, Forge: "github", DeliveryID: "x"}), ci.ErrNotFound)

			fl := f.flow(b.ID, ci.FlowDEV)
			d := store.Delivery{ProjectID: b.ProjectID, Forge: "gitlab", DeliveryID: "uuid-1", FlowID: fl.ID}
			require.NoError(t, s.RecordDelivery(f.ctx, &d))
			require.NoError(t, s.DeleteBranch(f.ctx, b.ID))
			got, err := s.GetDelivery(f.ctx, b.ProjectID, "gitlab", "uuid-1")
			require.NoError(t, err)
			require.Zero(t, got.FlowID, "deleting the flow keeps the delivery (still a duplicate) without it")

			require.NoError(t, s.DeleteProject(f.ctx, b.ProjectID))
			_, err = s.GetDelivery(f.ctx, b.ProjectID, "gitlab", "uuid-1")
			require.ErrorIs(t, err, ci.ErrNotFound)
		}},
	}
}
