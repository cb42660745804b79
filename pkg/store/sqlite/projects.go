package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/kraken-go/kk/pkg/ci"
)

// Projects.

const projectCols = `id, name, description, created`

func scanProject(sc scanner) (ci.Project, error) {
	var p ci.Project
	var created int64
	if err := sc.Scan(&p.ID, &p.Name, &p.Description, &created); err != nil {
		return ci.Project{}, err
	}
	p.Created = fromMS(created)
	return p, nil
}

// CreateProject inserts p and sets p.ID and p.Created.
func (s *Store) CreateProject(ctx context.Context, p *ci.Project) error {
	if err := checkName("project", p.Name); err != nil {
		return fmt.Errorf("create project: %w", err)
	}
	now := s.now()
	err := s.write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx,
			`INSERT INTO projects (name, description, created) VALUES (?, ?, ?) RETURNING id`,
			p.Name, p.Description, ms(now)).Scan(&p.ID)
		if isUnique(err) {
			return fmt.Errorf("a project with this name exists: %w", ci.ErrConflict)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create project %q: %w", p.Name, err)
	}
	p.Created = now
	return nil
}

// GetProject returns the project with this ID.
func (s *Store) GetProject(ctx context.Context, id int64) (ci.Project, error) {
	p, err := scanProject(s.r.QueryRowContext(ctx, `SELECT `+projectCols+` FROM projects WHERE id = ?`, id))
	if err != nil {
		return ci.Project{}, fmt.Errorf("get project: %w", notFound(err, "project", id))
	}
	return p, nil
}

// GetProjectByName returns the project with this name.
func (s *Store) GetProjectByName(ctx context.Context, name string) (ci.Project, error) {
	p, err := scanProject(s.r.QueryRowContext(ctx, `SELECT `+projectCols+` FROM projects WHERE name = ?`, name))
	if err != nil {
		return ci.Project{}, fmt.Errorf("get project: %w", notFound(err, "project", fmt.Sprintf("%q", name)))
	}
	return p, nil
}

// ListProjects returns all projects ordered by name.
func (s *Store) ListProjects(ctx context.Context) ([]ci.Project, error) {
	out, err := queryAll(ctx, s.r, scanProject, `SELECT `+projectCols+` FROM projects ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	return out, nil
}

// DeleteProject deletes the project and, by cascade, everything below it.
func (s *Store) DeleteProject(ctx context.Context, id int64) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM projects WHERE id = ?`, id)
		if err != nil {
			return err
		}
		return mustAffect(res, "project", id)
	})
	if err != nil {
		return fmt.Errorf("delete project: %w", err)
	}
	return nil
}

// Branches.

const branchCols = `id, project_id, name, repo_branch, env, keep_flows_days, keep_logs_days, keep_artifacts_days, created`

func scanBranch(sc scanner) (ci.Branch, error) {
	var b ci.Branch
	var env string
	var created int64
	if err := sc.Scan(&b.ID, &b.ProjectID, &b.Name, &b.RepoBranch, &env, &b.Retention.KeepFlowsDays,
		&b.Retention.KeepLogsDays, &b.Retention.KeepArtifactsDays, &created); err != nil {
		return ci.Branch{}, err
	}
	m, err := decodeMap[string](env)
	if err != nil {
		return ci.Branch{}, fmt.Errorf("branch %d env: %w", b.ID, err)
	}
	b.Env = m
	b.Created = fromMS(created)
	return b, nil
}

// CreateBranch inserts b and sets b.ID and b.Created.
func (s *Store) CreateBranch(ctx context.Context, b *ci.Branch) error {
	if err := checkName("branch", b.Name); err != nil {
		return fmt.Errorf("create branch: %w", err)
	}
	env, err := encodeMap(b.Env)
	if err != nil {
		return fmt.Errorf("create branch %q: env: %w", b.Name, err)
	}
	now := s.now()
	err = s.write(ctx, func(tx *sql.Tx) error {
		ok, err := exists(ctx, tx, `SELECT 1 FROM projects WHERE id = ?`, b.ProjectID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("project %d: %w", b.ProjectID, ci.ErrNotFound)
		}
		err = tx.QueryRowContext(ctx,
			`INSERT INTO branches (project_id, name, repo_branch, env, created) VALUES (?, ?, ?, ?, ?) RETURNING id`,
			b.ProjectID, b.Name, b.RepoBranch, env, ms(now)).Scan(&b.ID)
		if isUnique(err) {
			return fmt.Errorf("the project has a branch with this name: %w", ci.ErrConflict)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create branch %q: %w", b.Name, err)
	}
	b.Created = now
	return nil
}

// GetBranch returns the branch with this ID.
func (s *Store) GetBranch(ctx context.Context, id int64) (ci.Branch, error) {
	b, err := scanBranch(s.r.QueryRowContext(ctx, `SELECT `+branchCols+` FROM branches WHERE id = ?`, id))
	if err != nil {
		return ci.Branch{}, fmt.Errorf("get branch: %w", notFound(err, "branch", id))
	}
	return b, nil
}

// GetBranchByName returns the project's branch with this name.
func (s *Store) GetBranchByName(ctx context.Context, projectID int64, name string) (ci.Branch, error) {
	b, err := scanBranch(s.r.QueryRowContext(ctx,
		`SELECT `+branchCols+` FROM branches WHERE project_id = ? AND name = ?`, projectID, name))
	if err != nil {
		return ci.Branch{}, fmt.Errorf("get branch: %w",
			notFound(err, "branch", fmt.Sprintf("%q of project %d", name, projectID)))
	}
	return b, nil
}

// ListBranches returns the project's branches ordered by name.
func (s *Store) ListBranches(ctx context.Context, projectID int64) ([]ci.Branch, error) {
	out, err := queryAll(ctx, s.r, scanBranch,
		`SELECT `+branchCols+` FROM branches WHERE project_id = ? ORDER BY name`, projectID)
	if err != nil {
		return nil, fmt.Errorf("list branches of project %d: %w", projectID, err)
	}
	return out, nil
}

// DeleteBranch deletes the branch and, by cascade, everything below it.
func (s *Store) DeleteBranch(ctx context.Context, id int64) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM branches WHERE id = ?`, id)
		if err != nil {
			return err
		}
		return mustAffect(res, "branch", id)
	})
	if err != nil {
		return fmt.Errorf("delete branch: %w", err)
	}
	return nil
}

// Stages.

const stageCols = `id, branch_id, name, enabled, code, schema, parent, repo, created, updated`

func scanStage(sc scanner) (ci.Stage, error) {
	var st ci.Stage
	var schema, repo sql.NullString
	var created, updated int64
	if err := sc.Scan(&st.ID, &st.BranchID, &st.Name, &st.Enabled, &st.Code, &schema, &st.Parent,
		&repo, &created, &updated); err != nil {
		return ci.Stage{}, err
	}
	r, err := decodeRepo(repo.String)
	if err != nil {
		return ci.Stage{}, fmt.Errorf("stage %d: %w", st.ID, err)
	}
	st.Repo = r
	st.Schema = decodeRaw(schema)
	st.Created = fromMS(created)
	st.Updated = fromMS(updated)
	return st, nil
}

// PutStage inserts the stage or replaces Code, Schema, Parent and Enabled of the
// branch's stage of the same name. It sets s.ID, s.Created and s.Updated.
func (s *Store) PutStage(ctx context.Context, st *ci.Stage) error {
	if err := checkName("stage", st.Name); err != nil {
		return fmt.Errorf("put stage: %w", err)
	}
	schema, err := encodeRaw("stage schema", st.Schema)
	if err != nil {
		return fmt.Errorf("put stage %q: %w", st.Name, err)
	}
	repo, err := encodeRepo(st.Repo)
	if err != nil {
		return fmt.Errorf("put stage %q: %w", st.Name, err)
	}
	now := s.now()
	var created int64
	err = s.write(ctx, func(tx *sql.Tx) error {
		ok, err := exists(ctx, tx, `SELECT 1 FROM branches WHERE id = ?`, st.BranchID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("branch %d: %w", st.BranchID, ci.ErrNotFound)
		}
		return tx.QueryRowContext(ctx, `
			INSERT INTO stages (branch_id, name, enabled, code, schema, parent, repo, created, updated)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (branch_id, name) DO UPDATE SET
				enabled = excluded.enabled, code = excluded.code, schema = excluded.schema,
				parent = excluded.parent, repo = excluded.repo, updated = excluded.updated
			RETURNING id, created`,
			st.BranchID, st.Name, boolInt(st.Enabled), st.Code, schema, st.Parent, repo, ms(now), ms(now),
		).Scan(&st.ID, &created)
	})
	if err != nil {
		return fmt.Errorf("put stage %q: %w", st.Name, err)
	}
	st.Created = fromMS(created)
	st.Updated = now
	return nil
}

// GetStage returns the stage with this ID.
func (s *Store) GetStage(ctx context.Context, id int64) (ci.Stage, error) {
	st, err := scanStage(s.r.QueryRowContext(ctx, `SELECT `+stageCols+` FROM stages WHERE id = ?`, id))
	if err != nil {
		return ci.Stage{}, fmt.Errorf("get stage: %w", notFound(err, "stage", id))
	}
	return st, nil
}

// GetStageByName returns the branch's stage with this name.
func (s *Store) GetStageByName(ctx context.Context, branchID int64, name string) (ci.Stage, error) {
	st, err := scanStage(s.r.QueryRowContext(ctx,
		`SELECT `+stageCols+` FROM stages WHERE branch_id = ? AND name = ?`, branchID, name))
	if err != nil {
		return ci.Stage{}, fmt.Errorf("get stage: %w",
			notFound(err, "stage", fmt.Sprintf("%q of branch %d", name, branchID)))
	}
	return st, nil
}

// ListStages returns the branch's stages ordered by name.
func (s *Store) ListStages(ctx context.Context, branchID int64) ([]ci.Stage, error) {
	out, err := queryAll(ctx, s.r, scanStage,
		`SELECT `+stageCols+` FROM stages WHERE branch_id = ? ORDER BY name`, branchID)
	if err != nil {
		return nil, fmt.Errorf("list stages of branch %d: %w", branchID, err)
	}
	return out, nil
}

// DeleteStage deletes the stage. Its runs keep their StageName; their StageID
// becomes 0.
func (s *Store) DeleteStage(ctx context.Context, id int64) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM stages WHERE id = ?`, id)
		if err != nil {
			return err
		}
		return mustAffect(res, "stage", id)
	})
	if err != nil {
		return fmt.Errorf("delete stage: %w", err)
	}
	return nil
}
