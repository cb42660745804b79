package storetest

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kraken-go/kk/pkg/ci"
	"github.com/kraken-go/kk/pkg/store"
)

func secretCases() []testCase {
	return []testCase{
		{"create get list delete", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			p := f.project()
			for _, name := range []string{"zeta", "alpha", "deploy_key"} {
				sec := store.Secret{ProjectID: p.ID, Name: name, Kind: "simple", Sealed: []byte("sealed-" + name)}
				require.NoError(t, s.CreateSecret(f.ctx, &sec))
				require.NotZero(t, sec.ID)
				requireRecent(t, sec.Created)
				require.Equal(t, sec.Created, sec.Updated)

				got, err := s.GetSecret(f.ctx, p.ID, name)
				require.NoError(t, err)
				require.Equal(t, sec, got)
			}
			list, err := s.ListSecrets(f.ctx, p.ID)
			require.NoError(t, err)
			require.Equal(t, []string{"alpha", "deploy_key", "zeta"}, secretNames(list))
			for _, sec := range list {
				require.Nil(t, sec.Sealed, "ListSecrets must not return values")
				require.Equal(t, p.ID, sec.ProjectID)
			}
			sealed, err := s.ListSealedSecrets(f.ctx, p.ID)
			require.NoError(t, err)
			require.Equal(t, []string{"alpha", "deploy_key", "zeta"}, secretNames(sealed))
			for _, sec := range sealed {
				require.Equal(t, "sealed-"+sec.Name, string(sec.Sealed))
			}

			require.NoError(t, s.DeleteSecret(f.ctx, p.ID, "alpha"))
			_, err = s.GetSecret(f.ctx, p.ID, "alpha")
			require.ErrorIs(t, err, ci.ErrNotFound)
			require.ErrorIs(t, s.DeleteSecret(f.ctx, p.ID, "alpha"), ci.ErrNotFound)
			list, err = s.ListSecrets(f.ctx, p.ID)
			require.NoError(t, err)
			require.Equal(t, []string{"deploy_key", "zeta"}, secretNames(list))
		}},
		{"create conflicts, put replaces", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			p := f.project()
			first := store.Secret{ProjectID: p.ID, Name: "token", Kind: "simple", Sealed: []byte("v1")}
			require.NoError(t, s.CreateSecret(f.ctx, &first))

			dup := store.Secret{ProjectID: p.ID, Name: "token", Kind: "simple", Sealed: []byte("v2")}
			require.ErrorIs(t, s.CreateSecret(f.ctx, &dup), ci.ErrConflict)
			got, err := s.GetSecret(f.ctx, p.ID, "token")
			require.NoError(t, err)
			require.Equal(t, "v1", string(got.Sealed), "a conflicting create changes nothing")

			repl := store.Secret{ProjectID: p.ID, Name: "token", Kind: "ssh-key", Sealed: []byte("v3")}
			created, err := s.PutSecret(f.ctx, &repl)
			require.NoError(t, err)
			require.False(t, created)
			require.Equal(t, first.ID, repl.ID)
			require.Equal(t, first.Created, repl.Created)
			require.False(t, repl.Updated.Before(first.Updated))
			got, err = s.GetSecret(f.ctx, p.ID, "token")
			require.NoError(t, err)
			require.Equal(t, repl, got)

			fresh := store.Secret{ProjectID: p.ID, Name: "other", Kind: "simple", Sealed: []byte("v")}
			created, err = s.PutSecret(f.ctx, &fresh)
			require.NoError(t, err)
			require.True(t, created)
			require.NotZero(t, fresh.ID)
			requireRecent(t, fresh.Created)
		}},
		{"names are per project", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			p1, p2 := f.project(), f.project()
			for i, p := range []ci.Project{p1, p2} {
				sec := store.Secret{ProjectID: p.ID, Name: "token", Kind: "simple", Sealed: fmt.Appendf(nil, "v%d", i)}
				require.NoError(t, s.CreateSecret(f.ctx, &sec))
			}
			got, err := s.GetSecret(f.ctx, p2.ID, "token")
			require.NoError(t, err)
			require.Equal(t, "v1", string(got.Sealed))
			require.NoError(t, s.DeleteSecret(f.ctx, p1.ID, "token"))
			_, err = s.GetSecret(f.ctx, p2.ID, "token")
			require.NoError(t, err)
		}},
		{"missing project and bad input", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			p := f.project()
			sec := store.Secret{ProjectID: 9999, Name: "token", Kind: "simple", Sealed: []byte("v")}
			require.ErrorIs(t, s.CreateSecret(f.ctx, &sec), ci.ErrNotFound)
			_, err := s.PutSecret(f.ctx, &sec)
			require.ErrorIs(t, err, ci.ErrNotFound)
			for _, bad := range []store.Secret{
				{ProjectID: p.ID, Kind: "simple", Sealed: []byte("v")},
				{ProjectID: p.ID, Name: "x", Sealed: []byte("v")},
				{ProjectID: p.ID, Name: "x", Kind: "simple"},
			} {
				require.ErrorIs(t, s.CreateSecret(f.ctx, &bad), ci.ErrInvalid)
				_, err := s.PutSecret(f.ctx, &bad)
				require.ErrorIs(t, err, ci.ErrInvalid)
			}
			list, err := s.ListSecrets(f.ctx, p.ID)
			require.NoError(t, err)
			require.Empty(t, list)
			require.NotNil(t, list, "an empty list is not nil (JSON [])")
			_, err = s.GetSecret(f.ctx, p.ID, "nope")
			require.ErrorIs(t, err, ci.ErrNotFound)
		}},
		{"large sealed value round-trips", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			p := f.project()
			big := bytes.Repeat([]byte{0, 1, 2, 0xff}, 20<<10)
			sec := store.Secret{ProjectID: p.ID, Name: "key", Kind: "ssh-key", Sealed: big}
			require.NoError(t, s.CreateSecret(f.ctx, &sec))
			got, err := s.GetSecret(f.ctx, p.ID, "key")
			require.NoError(t, err)
			require.Equal(t, big, got.Sealed)
		}},
		{"deleted with the project", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			p, other := f.project(), f.project()
			for _, id := range []int64{p.ID, other.ID} {
				sec := store.Secret{ProjectID: id, Name: "token", Kind: "simple", Sealed: []byte("v")}
				require.NoError(t, s.CreateSecret(f.ctx, &sec))
			}
			require.NoError(t, s.DeleteProject(f.ctx, p.ID))
			list, err := s.ListSealedSecrets(f.ctx, p.ID)
			require.NoError(t, err)
			require.Empty(t, list)
			list, err = s.ListSecrets(f.ctx, other.ID)
			require.NoError(t, err)
			require.Len(t, list, 1)
		}},
		{"concurrent puts leave one secret", func(t *testing.T, s store.Store) {
			f := newFx(t, s)
			p := f.project()
			errs := parallel(8, func(i int) error {
				sec := store.Secret{ProjectID: p.ID, Name: "token", Kind: "simple", Sealed: fmt.Appendf(nil, "v%d", i)}
				_, err := s.PutSecret(f.ctx, &sec)
				return err
			})
			requireNoErrors(t, errs)
			list, err := s.ListSecrets(f.ctx, p.ID)
			require.NoError(t, err)
			require.Len(t, list, 1)
		}},
	}
}

func secretNames(list []store.Secret) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = s.Name
	}
	return out
}
