"""The campaign benchmark: followup's ``simulate`` beside a bare baseline, durable-rules and
rule-engine on the same abandoned-cart workload (see ``benchmarks/README.md``)."""
