"""The blocks of ``results.json`` as types: one ``TypedDict`` per block.

``results.schema.json`` says what a valid file holds (types, ranges, which blocks a version always writes);
these types say the same keys to Python, so that code reading a run names each quantity once and a type checker
sees a misspelt key (``ua_helpers.report.results.from_json`` and ``load_results`` return :class:`Results`). A key
is ``NotRequired`` where a valid file may lack it: every project block (an older run, or the seed's own file, has
none), and the few keys written only in some runs. :func:`undeclared` lists what a results dict holds that these
types do not declare, or lacks that they require; the tests run it on real runs, so that the types and the code
that writes the file cannot drift apart.
"""
# No ``from __future__ import annotations``: TypedDict reads NotRequired from evaluated annotations only.
import sys
import types
import typing
from typing import Any, Union

if sys.version_info >= (3, 11):
    from typing import NotRequired, TypedDict, get_type_hints, is_typeddict
else:  # NotRequired keys in a TypedDict (PEP 655) arrived with Python 3.11
    from typing_extensions import NotRequired, TypedDict, get_type_hints, is_typeddict

# --------------------------------------------------------------------------- the seed's own file


class SeedTest(TypedDict):
    """One test of the seed: Pearson r with its percentile bootstrap CI and t-test p-value."""
    r: float | None
    ci_lower: float | None
    ci_upper: float | None
    p_value: float | None
    includes_zero: bool
    note: NotRequired[str]


class BestLayer(TypedDict):
    layer: int
    best_metric: str | None
    r: float
    excludes_zero: bool


class SeedSummary(TypedDict):
    total_tests: int
    significant_tests: int
    mid_layer_significant: int
    late_layer_significant: int


class SeedResults(TypedDict):
    """The seed notebook's file, key for key (its keys stay as they are)."""
    timestamp: str
    model: str
    method: str
    n_pairs: int
    n_bootstrap: int
    metrics_tested: list[str]
    results: dict[str, dict[str, SeedTest]]  # layer (as a string) -> metric -> test
    best_per_layer: list[BestLayer]
    summary: SeedSummary
    caveat: str


# ------------------------------------------------------------- extended tests (ua_helpers.analysis.inference)


class ExtendedTest(TypedDict):
    """One (layer, metric) test under every correction: multiplicity, permutations, Spearman, partial r."""
    layer: int
    metric: str
    n: int
    r: float | None
    ci_lower: float | None
    ci_upper: float | None
    bca_lower: float | None
    bca_upper: float | None
    p_value: float | None
    p_perm: float | None
    p_holm: float | None
    p_bh: float | None
    p_maxstat: float | None
    spearman_rho: float | None
    spearman_ci_lower: float | None
    spearman_ci_upper: float | None
    spearman_p_value: float | None
    spearman_p_bh: float | None
    p_maxstat_spearman: float | None
    p_perm_se: float | None
    p_maxstat_se: float | None
    p_maxstat_spearman_se: float | None
    maxstat_uncertain: bool
    maxstat_spearman_uncertain: bool
    partial_tokens_r: float | None
    partial_tokens_ci_lower: float | None
    partial_tokens_ci_upper: float | None
    partial_tokens_p_value: float | None
    partial_tokens_p_holm: float | None
    partial_tokens_p_bh: float | None
    partial_length_r: float | None
    partial_length_ci_lower: float | None
    partial_length_ci_upper: float | None
    partial_length_p_value: float | None
    partial_length_p_holm: float | None
    partial_length_p_bh: float | None
    partial_category_r: NotRequired[float | None]  # with categories only
    partial_category_ci_lower: NotRequired[float | None]
    partial_category_ci_upper: NotRequired[float | None]
    partial_category_p_value: NotRequired[float | None]
    partial_category_p_holm: NotRequired[float | None]
    partial_category_p_bh: NotRequired[float | None]
    partial_all_r: float | None
    partial_all_ci_lower: float | None
    partial_all_ci_upper: float | None
    partial_all_p_value: float | None
    partial_all_p_holm: float | None
    partial_all_p_bh: float | None
    excludes_zero: bool
    survives_holm: bool
    survives_bh: bool
    survives_maxstat: bool
    survives_confounds: bool
    note: str


class CategoryTest(TypedDict):
    """One (layer, metric, category) test: exploratory, Benjamini-Hochberg within the categories."""
    layer: int
    metric: str
    category: str
    n: int
    r: float | None
    ci_lower: float | None
    ci_upper: float | None
    p_value: float | None
    p_bh: float | None
    excludes_zero: bool
    exploratory: bool
    note: str


class ExtendedSummary(TypedDict):
    n_tests: int
    n_tests_defined: int
    n_excludes_zero: int
    n_perm_significant: int
    n_survives_holm: int
    n_survives_bh: int
    n_survives_maxstat: int
    n_survives_confounds: int
    maxstat_critical_r: float | None
    alpha: float
    n_pairs: int
    n_bootstrap: int
    n_permutations: int
    seed: int | None
    ci_level: float
    bca: bool
    n_categories: int
    partial_df: dict[str, int]
    covariate_sets: dict[str, Any]
    partial_ci_method: str


class Extended(TypedDict):
    summary: ExtendedSummary
    tests: list[ExtendedTest]
    per_category: NotRequired[list[CategoryTest]]


# ------------------------------------------------------------- the evidence ladder (ua_helpers.analysis.evidence)


class EvidenceLevel(TypedDict):
    level: int
    name: str
    criterion: str
    count: int
    count_distinct: int


class EvidenceTest(TypedDict):
    """One test on the ladder: the rung it reaches, the criteria it passes, and the quantities they read."""
    layer: int
    metric: str
    level: int
    level_name: str
    passes: dict[str, bool]
    r: float | None
    ci_lower: float | None
    ci_upper: float | None
    p_bh: float | None
    p_maxstat: float | None
    spearman_rho: float | None
    spearman_ci_lower: float | None
    spearman_ci_upper: float | None
    partial_all_r: float | None
    partial_all_ci_lower: float | None
    partial_all_ci_upper: float | None
    partial_p_adjusted: float | None
    lexical_partial_r: NotRequired[float | None]  # with the lexical control
    lexical_ci_lower: NotRequired[float | None]
    lexical_ci_upper: NotRequired[float | None]
    lexical_p_holm: NotRequired[float | None]
    p_maxstat_se: float | None
    maxstat_uncertain: bool
    p_maxstat_spearman: float | None
    rank_level: int
    most_influential_pair: int | None
    loo_delta_r: float | None
    loo_r_min: float | None
    loo_r_max: float | None
    loo_sign_change: bool
    loo_verdict_change: bool
    r_without_massive: float | None
    massive_changes: bool
    disagreement: str
    group: int | None


class Disagreement(TypedDict):
    layer: int
    metric: str
    r: float | None
    ci_lower: float | None
    ci_upper: float | None
    spearman_rho: float | None
    spearman_ci_lower: float | None
    spearman_ci_upper: float | None
    kind: str


class MassiveLayer(TypedDict):
    layer: int
    min: float
    q25: float
    median: float
    q75: float
    max: float
    max_ratio: float
    n_massive: int


class MassiveStatement(TypedDict):
    pair: int
    side: str
    layers: list[int]
    max_ratio: float
    text: str


class MassiveActivations(TypedDict):
    threshold: float
    per_layer: list[MassiveLayer]
    statements: list[MassiveStatement]


class RedundantGroup(TypedDict):
    layer: int
    metrics: list[str]
    min_abs_corr: float
    signs: list[int]


class LayerRedundancy(TypedDict):
    layer: int
    cos_centroids: float
    centroid_distance: float
    spread: float
    distance_ratio: float


class Evidence(TypedDict):
    schema_version: int
    alpha: float
    partial_adjust: str
    levels: list[EvidenceLevel]
    tests: list[EvidenceTest]
    redundant_groups: list[RedundantGroup]
    redundancy: list[LayerRedundancy]
    massive_activations: MassiveActivations
    disagreements: list[Disagreement]
    criteria: dict[str, str]


# ------------------------------------------------------------- the group levels (ua_helpers.analysis.levels)


class CategoryStats(TypedDict):
    n_pairs: int
    uniformity_a: float
    uniformity_b: float
    asymmetry: float
    output_preference: float
    pct_prefer_a: float


class LevelTest(TypedDict):
    """A group-level test at one layer: r across the groups, with its bootstrap CI (the seed's keys)."""
    r: float | None
    ci_lower: float | None
    ci_upper: float | None
    p_value: float | None
    includes_zero: bool
    note: str


class CategoryLayer(LevelTest):
    """The seed's category-level test at one layer, with each category's numbers."""
    n_categories: int
    categories: dict[str, CategoryStats]
    # The published file's spelling: a key with a leading underscore.
    _global_stats: NotRequired[dict[str, Any]]


class CategoryLevel(TypedDict):
    method: str
    n_categories: int
    n_bootstrap: int
    ci_level: float
    seed: int | None
    layer_results: dict[str, CategoryLayer]  # layer (as a string) -> test
    caveat: str


class BinsTest(LevelTest):
    n_bins: int


class BinsSpread(TypedDict):
    """r over many random binnings at one bin count."""
    r_mean: float | None
    r_std: float | None
    p_mean: float | None
    n_valid: int
    share_ci_excludes_zero: float | None


class OptionABins(TypedDict):
    method: str
    k_bins: int
    n_bootstrap: int
    ci_level: float
    seed: int | None
    seeded_binning: str
    n_binnings: int
    k_values: list[int]
    distribution_ci: str
    bootstrap_results: dict[str, BinsTest]  # layer -> test at k_bins
    results_by_k: dict[str, dict[str, BinsSpread]]  # layer -> bin count -> spread


# ------------------------------------------------------------- controls (ua_helpers.analysis.controls)


class RandomTokenTest(TypedDict):
    layer: int
    metric: str
    r_mean: float | None
    r_min: float | None
    r_max: float | None
    r: list[float | None]  # one per seed


class RandomTokens(TypedDict):
    seeds: list[int]
    description: str
    tests: list[RandomTokenTest]


class ShuffleTest(TypedDict):
    layer: int
    metric: str
    r_observed: float | None
    null_mean: float | None
    null_median: float | None
    null_ci_lower: float | None
    null_ci_upper: float | None
    p_value: float | None


class StatementTest(TypedDict):
    layer: int
    metric: str
    r_a: float | None
    r_b: float | None


class ShuffledPairing(TypedDict):
    n_shuffles: int
    seed: int | None
    ci_level: float
    tests: list[ShuffleTest]
    statement_level: list[StatementTest]


class LexicalCovariate(TypedDict):
    name: str
    description: str
    r: float | None
    multiple_r: float | None


class PerTestCovariate(TypedDict):
    name: str
    description: str


class LexicalTest(TypedDict):
    layer: int
    metric: str
    partial_r: float | None
    ci_lower: float | None
    ci_upper: float | None
    p_value: float | None
    p_holm: float | None
    df: int
    note: str


class Lexical(TypedDict):
    frequency_proxy: str
    ci_method: str
    covariates: list[LexicalCovariate]
    per_test_covariates: list[PerTestCovariate]
    tests: list[LexicalTest]


class Controls(TypedDict):
    schema_version: int
    representation: str
    prefix: str
    random_tokens: NotRequired[RandomTokens]
    shuffled_pairing: NotRequired[ShuffledPairing]
    lexical: NotRequired[Lexical]


# --------------------------------------------------------------------------- the run's inputs and the comparison


class Dataset(TypedDict):
    name: str
    source: NotRequired[str | None]
    sha256: str
    n_pairs: int
    categories: NotRequired[dict[str, int]]  # category -> pairs
    orientation: NotRequired[str]


class Preference(TypedDict):
    """NLL(B) - NLL(A) over the pairs."""
    mean: float
    sd: float | None
    share_prefers_a: float | None


class SignAgreementTest(TypedDict):
    layer: int
    metric: str
    ref_layer: int
    ref_sign: int | None
    r: NotRequired[float | None]


class ComparisonReference(TypedDict):
    model: str
    source: str
    n_pairs: NotRequired[int | None]


class SignAgreementNull(TypedDict):
    """How many tests have the reference's sign, beside that count under permutations of the preference."""
    n_tests: int
    observed: int
    n_permutations: int
    seed: NotRequired[int]
    null_mean: NotRequired[float]
    null_sd: NotRequired[float]
    null_median: NotRequired[float]
    null_interval: NotRequired[float | None]
    null_ci_lower: int
    null_ci_upper: int
    null_counts: list[int]
    p_at_most: NotRequired[float | None]
    p_at_least: NotRequired[float | None]
    p_value: float | None
    binomial_mean: NotRequired[float]
    binomial_ci_lower: NotRequired[int]
    binomial_ci_upper: NotRequired[int]
    tests: list[SignAgreementTest]
    reference: ComparisonReference


class Comparison(TypedDict):
    sign_agreement_null: NotRequired[SignAgreementNull]


# --------------------------------------------------------------------------- the whole file


class Results(SeedResults, total=False):
    """A run's ``results.json``: the seed's keys, then this project's blocks (each optional to a reader: older
    runs lack the newer ones; :func:`ua_helpers.report.results.require_block` says which and why)."""
    schema_version: int
    layers: list[int]
    num_layers: int
    mid_layers: list[int]
    late_layers: list[int]
    dataset: Dataset
    parameters: dict[str, Any]
    model_info: dict[str, Any]
    extraction: dict[str, Any]
    versions: dict[str, str]
    ci_level: float | None
    seed: int | None
    knn_k: int | None
    preference: Preference
    extended: Extended
    evidence: Evidence
    category_level: CategoryLevel
    option_a_bins: OptionABins
    controls: Controls
    comparison: Comparison


def undeclared(value: Any, tp: Any = Results, path: str = "results") -> list[str]:
    """List where ``value`` departs from the keys of ``tp``: keys it holds that no type declares, and required
    keys it lacks, as ``"results.evidence.tests[0]: undeclared key 'x'"``. Only the structure is compared; the
    schema checks the values."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        if value is None:
            return []
        members = [t for t in typing.get_args(tp) if t is not type(None)]
        found = [undeclared(value, t, path) for t in members]
        return min(found, key=len) if found else []
    if is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {type(value).__name__}"]
        hints = get_type_hints(tp)
        out = [f"{path}: undeclared key {k!r}" for k in value if k not in hints]
        out += [f"{path}: lacks the required key {k!r}" for k in sorted(tp.__required_keys__) if k not in value]
        for key, sub in hints.items():
            if key in value:
                out += undeclared(value[key], sub, f"{path}.{key}")
        return out
    if origin is list and isinstance(value, list):
        (item,) = typing.get_args(tp)
        return [m for i, v in enumerate(value) for m in undeclared(v, item, f"{path}[{i}]")]
    if origin is dict and isinstance(value, dict):
        _, item = typing.get_args(tp)
        return [m for k, v in value.items() for m in undeclared(v, item, f"{path}[{k!r}]")]
    return []
