package postgres

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kraken-go/kk/pkg/ci"
)

// tokenTouchInterval is how stale Token.LastUsed may get before GetToken
// writes it again, so that authenticating a request is usually a pure read.
const tokenTouchInterval = time.Minute

const userCols = `id, name, password_hash, admin, created`

func scanUser(sc pgx.Row) (ci.User, error) {
	var u ci.User
	if err := sc.Scan(&u.ID, &u.Name, &u.PasswordHash, &u.Admin, &u.Created); err != nil {
		return ci.User{}, err
	}
	return u, nil
}

// CreateUser inserts u and sets u.ID and u.Created.
func (s *Store) CreateUser(ctx context.Context, u *ci.User) error {
	if err := checkName("user", u.Name); err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	now := s.now()
	err := s.write(ctx, func(tx querier) error {
		err := tx.QueryRow(ctx,
			`INSERT INTO users (name, password_hash, admin, created) VALUES ($1, $2, $3, $4) RETURNING id`,
			u.Name, u.PasswordHash, u.Admin, now).Scan(&u.ID)
		if isUnique(err) {
			return fmt.Errorf("a user with this name exists: %w", ci.ErrConflict)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create user %q: %w", u.Name, err)
	}
	u.Created = now
	return nil
}

// GetUserByName returns the user with this name.
func (s *Store) GetUserByName(ctx context.Context, name string) (ci.User, error) {
	u, err := scanUser(s.q().QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE name = $1`, name))
	if err != nil {
		return ci.User{}, fmt.Errorf("get user: %w", notFound(err, "user", strconv.Quote(name)))
	}
	return u, nil
}

// CountUsers returns the number of users.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := s.q().QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

// CreateToken inserts t and sets t.ID and t.Created.
func (s *Store) CreateToken(ctx context.Context, t *ci.Token) error {
	if t.Hash == "" {
		return fmt.Errorf("create token: hash is empty: %w", ci.ErrInvalid)
	}
	now := s.now()
	err := s.write(ctx, func(tx querier) error {
		err := tx.QueryRow(ctx,
			`INSERT INTO tokens (user_id, hash, name, created, last_used) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
			t.UserID, t.Hash, t.Name, now, tsPtr(t.LastUsed)).Scan(&t.ID)
		switch {
		case isForeignKey(err):
			return fmt.Errorf("user %d: %w", t.UserID, ci.ErrNotFound)
		case isUnique(err):
			return fmt.Errorf("token hash is in use: %w", ci.ErrConflict)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create token %q: %w", t.Name, err)
	}
	t.Created = now
	t.LastUsed = tsPtr(t.LastUsed)
	return nil
}

// GetToken returns the token with this hash and its user. It writes LastUsed
// only when it is unset or older than a minute.
func (s *Store) GetToken(ctx context.Context, hash string, now time.Time) (ci.Token, ci.User, error) {
	if hash == "" {
		return ci.Token{}, ci.User{}, fmt.Errorf("get token: empty hash: %w", ci.ErrNotFound)
	}
	var t ci.Token
	var u ci.User
	err := s.q().QueryRow(ctx, `
		SELECT t.id, t.user_id, t.hash, t.name, t.created, t.last_used,
			u.id, u.name, u.password_hash, u.admin, u.created
		FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = $1`, hash).
		Scan(&t.ID, &t.UserID, &t.Hash, &t.Name, &t.Created, &t.LastUsed,
			&u.ID, &u.Name, &u.PasswordHash, &u.Admin, &u.Created)
	if err != nil {
		return ci.Token{}, ci.User{}, fmt.Errorf("get token: %w", notFound(err, "token", "(hidden)"))
	}
	now = ts(now)
	if t.LastUsed == nil || now.Sub(*t.LastUsed) >= tokenTouchInterval {
		// Conditional, so concurrent requests write it once and a clock
		// running behind never moves it back.
		err := s.write(ctx, func(tx querier) error {
			_, err := tx.Exec(ctx, `UPDATE tokens SET last_used = $1
				WHERE id = $2 AND (last_used IS NULL OR last_used <= $3)`,
				now, t.ID, now.Add(-tokenTouchInterval))
			return err
		})
		if err != nil {
			return ci.Token{}, ci.User{}, fmt.Errorf("get token: touch: %w", err)
		}
		t.LastUsed = &now
	}
	return t, u, nil
}

// DeleteToken deletes the token.
func (s *Store) DeleteToken(ctx context.Context, id int64) error {
	err := s.write(ctx, func(tx querier) error {
		tag, err := tx.Exec(ctx, `DELETE FROM tokens WHERE id = $1`, id)
		if err != nil {
			return err
		}
		return mustAffect(tag, "token", id)
	})
	if err != nil {
		return fmt.Errorf("delete token: %w", err)
	}
	return nil
}
