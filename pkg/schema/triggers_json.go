package schema

import (
	"encoding/json"
	"fmt"
)

// webhookKeys are the trigger keys kept in Triggers.Webhooks.
var webhookKeys = [...]string{"github", "gitlab", "gitea", "radicle"}

// MarshalJSON writes the triggers in Kraken's shape, webhook triggers inline
// next to the other keys.
func (t Triggers) MarshalJSON() ([]byte, error) {
	type plain Triggers
	b, err := json.Marshal(plain(t))
	if err != nil || len(t.Webhooks) == 0 {
		return b, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, fmt.Errorf("marshal triggers: %w", err)
	}
	out := make(map[string]any, len(fields)+len(t.Webhooks))
	for k, v := range t.Webhooks {
		out[k] = v
	}
	for k, v := range fields {
		out[k] = v
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (t *Triggers) UnmarshalJSON(b []byte) error {
	type plain Triggers
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("unmarshal triggers: %w", err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return fmt.Errorf("unmarshal triggers: %w", err)
	}
	for _, k := range webhookKeys {
		raw, ok := fields[k]
		if !ok {
			continue
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("unmarshal triggers.%s: %w", k, err)
		}
		if p.Webhooks == nil {
			p.Webhooks = map[string]any{}
		}
		p.Webhooks[k] = v
	}
	*t = Triggers(p)
	return nil
}
