"""``cds studio``: a playground page for rule authors (loopback only, no authentication).

Pick a shipped case or paste a request; see the facts, the rules that fired and did not (with
why), the differential and the cards; edit a rule file and see the outcome against the served
rule set, validated as a reload would be. A separate app, never mounted by ``cds.app`` and
refused in the production profile.
"""
