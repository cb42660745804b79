package api

import "time"

// ScheduleEntry is one time or repo trigger of a stage in a branch's
// schedule (GET /branches/{id}/schedule, `kk stage schedule`).
type ScheduleEntry struct {
	StageID int64  `json:"stage_id"`
	Stage   string `json:"stage"`
	Enabled bool   `json:"enabled"`
	// Trigger is interval, date, cron or repo.
	Trigger string `json:"trigger"`
	// Rule is the trigger as written (for repo: its JSON).
	Rule string `json:"rule"`
	// LastFired is the scheduled instant of the last fire (repo: when new
	// commits were last found); absent: never.
	LastFired *time.Time `json:"last_fired,omitempty"`
	// LastPoll is a repo trigger's last poll of its repositories.
	LastPoll *time.Time `json:"last_poll,omitempty"`
	// Next is the next fire (repo: the next poll); absent: none.
	Next *time.Time `json:"next,omitempty"`
	Note string     `json:"note,omitempty"`
}
