"""The mineral provenance domain (DESIGN.md section 4): payloads, state, rules, queries."""
