"""Recommendation impressions with confounded top-3 ranking and a segment-heterogeneous click effect."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from causalkit.contracts import Dataset, Params, Roles, Simulated, Truth
from causalkit.coverage import World

__all__ = [
    "PositionBias",
    "PositionBiasParams",
    "SEGMENT_COLUMNS",
    "COVARIATES",
    "user_averaged_click",
    "USERS_4000",
    "user_clustered_world",
]

# MIND-small categories, ordered by the design document's DR lift (largest first).
_CATEGORIES = (
    "weather",
    "tv",
    "movies",
    "health",
    "music",
    "sports",
    "foodanddrink",
    "news",
    "video",
    "entertainment",
    "travel",
    "finance",
    "lifestyle",
    "autos",
    "kids",
    "middleeast",
    "northamerica",
)
# Row shares of the document's category table (the last three are rare in MIND-small).
_SHARES = (
    0.015,
    0.043,
    0.023,
    0.052,
    0.046,
    0.100,
    0.063,
    0.271,
    0.015,
    0.060,
    0.055,
    0.097,
    0.113,
    0.047,
    0.004,
    0.003,
    0.003,
)
_EFFECTS = (0.8, 0.6, 0.5, 0.5, 0.4, 0.3, 0.3, 0.2, 0.1, 0.1, 0.0, -0.1, -0.2, -0.3, 0.0, 0.0, 0.0)
_BASE = (0.2, 0.1, -0.2, -0.1, 0.2, 0.1, -0.2, 0.0, 0.0, -0.2, -0.3, -0.1, 0.0, -0.3, 0.0, 0.0, 0.0)

SEGMENT_COLUMNS = (
    "category",
    "subcategory",
    "history_bucket",
    "candidate_set_bucket",
    "item_exposure_quartile",
    "time_of_day",
)
COVARIATES = (
    "log_history_len",
    "log_candidate_set_size",
    "title_length",
    "abstract_length",
    "hour",
    "day_of_week",
    "log_item_exposures",
    "category",
    "subcategory",
)


class PositionBiasParams(Params):
    """Parameters of the position-bias world (defaults: shaped like the document's MIND-small table)."""

    n_rows: int = Field(737_762, ge=100, description="displayed items (rows)")
    n_users: int = Field(50_000, ge=1)
    n_items: int = Field(20_000, ge=10)
    n_subcategories: int = Field(260, ge=1, description="subcategories, spread over the categories")
    categories: tuple[str, ...] = _CATEGORIES
    category_shares: tuple[float, ...] = _SHARES
    category_baseline: tuple[float, ...] = Field(
        _BASE, description="log-odds of clicking by category (control)"
    )
    category_effects: tuple[float, ...] = Field(
        _EFFECTS, description="top-3 log-odds effect increment by category"
    )
    size_median: float = Field(25.0, gt=1, description="median candidate-set size (per impression)")
    size_sigma: float = Field(0.9, gt=0, description="log-SD of the candidate-set size")
    size_max: int = Field(300, ge=4)
    history_median: float = Field(20.0, gt=0)
    history_sigma: float = Field(1.2, gt=0)
    p_no_history: float = Field(0.02, ge=0, lt=1, description="share of users with empty history")
    popularity_sigma: float = Field(1.5, gt=0, description="log-SD of latent item popularity")
    diurnal_amplitude: float = Field(0.6, ge=0, lt=1)
    peak_hour: float = Field(9.0, ge=0, lt=24)
    title_mean: float = Field(10.0, gt=0)
    abstract_mean: float = Field(35.0, gt=0)
    top_k: int = Field(3, ge=1, description="treatment: displayed in the top k positions")
    rank_exposure: float = Field(0.8, description="ranking-score weight on log item exposures")
    rank_history: float = Field(0.3, description="ranking-score weight on log history length")
    rank_category: float = Field(1.0, description="ranking-score weight on the category baseline")
    rank_noise: float = Field(2.0, gt=0, description="SD of ranking noise (not affecting clicks)")
    click_intercept: float = Field(-4.6, description="control click log-odds intercept")
    click_exposure: float = Field(0.35, description="per log item exposure")
    click_history: float = Field(0.10, description="per log(1 + history length)")
    click_size: float = Field(-0.20, description="per log candidate-set size")
    effect_intercept: float = Field(
        0.35, description="top-3 log-odds effect at the median set size"
    )
    effect_size: float = Field(
        -0.45, description="change of the top-3 log-odds effect per log set size"
    )
    history_bins: tuple[float, ...] = (-1, 0, 10, 30, 100, np.inf)
    history_labels: tuple[str, ...] = ("0", "1-10", "11-30", "31-100", "101+")
    size_bins: tuple[float, ...] = (0, 10, 25, 50, 100, np.inf)
    size_labels: tuple[str, ...] = ("1-10", "11-25", "26-50", "51-100", "101+")
    hour_bins: tuple[float, ...] = (-1, 5, 11, 16, 20, 23)
    hour_labels: tuple[str, ...] = ("overnight", "morning", "afternoon", "evening", "late_evening")
    user_effect_sd: float = Field(
        0.0,
        ge=0,
        le=3,
        description="SD of each user's shift of the click log-odds (both arms), shared by all "
        "the user's impressions",
    )
    user_top_k_sd: float = Field(
        0.0,
        ge=0,
        le=3,
        description="SD of each user's shift of the top-k log-odds effect (how much position "
        "matters to the user), shared by all the user's impressions",
    )
    cluster_by_user: bool = Field(
        False, description="emit the cluster role user_id (inference treats users as the draws)"
    )
    added_fields: ClassVar[frozenset[str]] = frozenset(
        {"user_effect_sd", "user_top_k_sd", "cluster_by_user"}
    )

    @model_validator(mode="after")
    def _lengths(self) -> PositionBiasParams:
        k = len(self.categories)
        for name in ("category_shares", "category_baseline", "category_effects"):
            if len(getattr(self, name)) != k:
                raise ValueError(
                    f"{name} must have one value per category ({k}), got {len(getattr(self, name))}"
                )
        for b, lab in (
            ("history_bins", "history_labels"),
            ("size_bins", "size_labels"),
            ("hour_bins", "hour_labels"),
        ):
            if len(getattr(self, b)) != len(getattr(self, lab)) + 1:
                raise ValueError(f"{b} must have one more edge than {lab} has labels")
        if self.n_subcategories < k:
            raise ValueError(f"n_subcategories must be at least the number of categories ({k})")
        return self


def user_averaged_click(logit: np.ndarray, sd: float, nodes: int = 120) -> np.ndarray:
    r"""Each row's click probability averaged over a user shift, :math:`E_u[\operatorname{expit}(\eta + u)]`.

    For :math:`u \sim N(0, sd^2)`,

    .. math:: \int \operatorname{expit}(\eta + u)\,\phi(u/sd)/sd\,du
              \approx \sum_j w_j \operatorname{expit}(\eta + sd\,z_j)

    with the probabilists' Gauss-Hermite nodes :math:`z_j` and weights :math:`w_j`
    (normalised to sum to one), accumulated node by node (memory of one row vector).
    ``sd = 0`` gives :math:`\operatorname{expit}(\eta)`. The poles of the logistic function
    at :math:`\pm i\pi` slow the rule for wide normals: with 120 nodes the error is below
    :math:`10^{-15}` at :math:`sd \le 2` and :math:`3\cdot10^{-9}` at 3.5 (against adaptive
    quadrature), hence the parameters' bound of 3.
    """
    from scipy.special import expit

    if sd == 0:
        return np.asarray(expit(logit))
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    out = np.zeros_like(logit)
    for zj, wj in zip(z, w / w.sum(), strict=True):
        out += wj * expit(logit + sd * zj)
    return out


class PositionBias:
    r"""Recommendation impressions: does a top-3 position cause clicks? (design document, MIND-small).

    Impressions have candidate-set sizes :math:`S = \min(\max(2, \lfloor e^{\mu + \sigma Z}\rceil),
    S_{max})` with :math:`e^\mu` = ``size_median``; rows are cut after ``n_rows`` (the last
    impression is shortened). Each impression has a user (uniform over ``n_users``; history
    length lognormal, zero with ``p_no_history``), an hour with density
    :math:`\propto 1 + a\cos(2\pi(h - h_{peak})/24)` and a uniform day of week. Each row
    shows an item drawn with probability :math:`\propto` lognormal popularity; items have a
    category (shares ``category_shares``), a subcategory within it, title and abstract
    lengths (Poisson). ``item_exposures`` counts an item's rows.

    Ranking: score :math:`r = \rho_e \log(1+\text{exp}) + \rho_h \log(1+\text{hist})
    + \rho_c b_{cat} + \rho_\varepsilon \varepsilon`, positions by descending score within
    the impression; treatment :math:`D = 1\{\text{position} \le k\}`.

    Clicks (independent given the row's covariates, :math:`D` and the user shifts below):
    :math:`\operatorname{logit} p_0 = \beta_0 + b_{cat} + \beta_e\log(1+\text{exp})
    + \beta_h\log(1+\text{hist}) + \beta_s\log S`, :math:`\operatorname{logit} p_1 =
    \operatorname{logit} p_0 + \tau_0 + \tau_s(\log S - \log S_{med}) + \tau_{cat}`,
    :math:`Y = \text{Bern}(p_D)`. The ranking noise does not affect clicks, so
    :math:`(Y(0),Y(1)) \perp D \mid X` with :math:`X` the ``COVARIATES`` (unconfoundedness),
    and a per-arm logistic outcome model on :math:`X` is correctly specified. Confounding:
    exposure, history and category raise both the rank and the click probability, so the
    naive lift overstates the effect.

    Users (design document: 150,000 impressions from 14,029 users, so every SE is too small
    unless clustered by user): with ``user_effect_sd`` :math:`= \sigma_u` or ``user_top_k_sd``
    :math:`= \sigma_v` above zero, user :math:`j` draws :math:`u_j, v_j \sim N(0, 1)`
    independently of everything else, and every row of the user's impressions has
    :math:`\operatorname{logit} p_0 + \sigma_u u_j` and
    :math:`\operatorname{logit} p_1 + \sigma_u u_j + \sigma_v v_j`: users differ in how often
    they click and in how much the top positions matter to them. The shifts are unobserved
    but independent of :math:`X` and :math:`D`, so unconfoundedness given :math:`X` still
    holds; a user's rows are dependent, and the ``cluster`` role ``user_id``
    (``cluster_by_user=true``) tells inference so. The shifts are drawn after every other
    draw and compared with the same uniforms, so both SDs at 0 (the default) give the draws
    of the world without them. (A click-rate shift alone barely moves the AIPW SE: each
    impression has exactly ``top_k`` treated rows, and a shift common to its treated and
    control rows cancels in the score; the shift of the effect does not.)

    Truth (conditional on the simulated covariates, averaged over the unobserved user
    shifts): ``ATE`` = the mean over rows of :math:`E_{u,v}[p_1 - p_0]`
    (:func:`user_averaged_click` with SDs :math:`\sqrt{\sigma_u^2+\sigma_v^2}` and
    :math:`\sigma_u`; :math:`p_1 - p_0` without user shifts), ``ATT`` over treated rows, and
    ``segment.<column>.<level>`` over the rows of each segment of ``SEGMENT_COLUMNS`` (the
    document's buckets; exposure quartiles by rank).
    """

    name: ClassVar[str] = "position_bias"
    Params: ClassVar[type[Params]] = PositionBiasParams
    needs_base: ClassVar[bool] = False

    def __init__(self, params: PositionBiasParams | None = None) -> None:
        self.params = params or PositionBiasParams()

    def simulate(self, rng: np.random.Generator, base: Dataset | None = None) -> Simulated:
        from scipy.special import expit

        p = self.params
        n = p.n_rows
        # impressions and their sizes
        guess = int(np.ceil(1.5 * n / p.size_median)) + 10
        while True:
            size = np.rint(
                np.exp(np.log(p.size_median) + p.size_sigma * rng.standard_normal(guess))
            )
            size = np.clip(size, 2, p.size_max).astype(np.int64)
            if size.sum() >= n:
                break
            guess *= 2
        ends = np.cumsum(size)
        n_imp = int(np.searchsorted(ends, n) + 1)
        size = size[:n_imp]
        size[-1] -= int(ends[n_imp - 1] - n)
        imp = np.repeat(np.arange(n_imp), size)
        start = np.concatenate([[0], np.cumsum(size)[:-1]])

        # users, context
        hist_user = np.rint(
            np.exp(np.log(p.history_median) + p.history_sigma * rng.standard_normal(p.n_users))
        )
        hist_user[rng.random(p.n_users) < p.p_no_history] = 0
        user = rng.integers(0, p.n_users, n_imp)
        hours = np.arange(24)
        w_hour = 1 + p.diurnal_amplitude * np.cos(2 * np.pi * (hours - p.peak_hour) / 24)
        hour = rng.choice(24, size=n_imp, p=w_hour / w_hour.sum())
        dow = rng.integers(0, 7, n_imp)

        # items
        k = len(p.categories)
        shares = np.asarray(p.category_shares) / np.sum(p.category_shares)
        sub_cat = np.concatenate(
            [np.arange(k), rng.choice(k, size=p.n_subcategories - k, p=shares)]
        )
        item_sub = rng.integers(0, p.n_subcategories, p.n_items)
        # pick the category by share, then a subcategory of it
        item_cat = rng.choice(k, size=p.n_items, p=shares)
        subs_of = [np.flatnonzero(sub_cat == c) for c in range(k)]
        for c in range(k):
            rows = np.flatnonzero(item_cat == c)
            item_sub[rows] = subs_of[c][rng.integers(0, subs_of[c].size, rows.size)]
        pop = np.exp(p.popularity_sigma * rng.standard_normal(p.n_items))
        title = 1 + rng.poisson(p.title_mean - 1 if p.title_mean > 1 else p.title_mean, p.n_items)
        abstract = rng.poisson(p.abstract_mean, p.n_items)
        item = rng.choice(p.n_items, size=n, p=pop / pop.sum())
        exposures = np.bincount(item, minlength=p.n_items)[item]

        cat = item_cat[item]
        hist = hist_user[user][imp]
        s = size[imp].astype(np.float64)
        log_exp = np.log1p(exposures)
        log_hist = np.log1p(hist)
        base_cat = np.asarray(p.category_baseline)[cat]

        # ranking within impressions
        score = (
            p.rank_exposure * log_exp
            + p.rank_history * log_hist
            + p.rank_category * base_cat
            + p.rank_noise * rng.standard_normal(n)
        )
        order = np.lexsort((-score, imp))
        position = np.empty(n, dtype=np.int64)
        position[order] = np.arange(n) - start[imp[order]] + 1
        d = position <= p.top_k

        logit0 = (
            p.click_intercept
            + base_cat
            + p.click_exposure * log_exp
            + p.click_history * log_hist
            + p.click_size * np.log(s)
        )
        tau = (
            p.effect_intercept
            + p.effect_size * (np.log(s) - np.log(p.size_median))
            + np.asarray(p.category_effects)[cat]
        )
        uniform = rng.random(n)
        su, sv = p.user_effect_sd, p.user_top_k_sd
        if su or sv:  # drawn last: without user effects every draw is the one it was before
            u, v = rng.standard_normal((2, p.n_users))[:, user[imp]]
            p0, p1 = expit(logit0 + su * u), expit(logit0 + tau + su * u + sv * v)
            effect = user_averaged_click(logit0 + tau, float(np.hypot(su, sv))) - (
                user_averaged_click(logit0, su)
            )
        else:
            p0, p1 = expit(logit0), expit(logit0 + tau)
            effect = p1 - p0
        y = (uniform < np.where(d, p1, p0)).astype(np.int64)

        cats = np.asarray(p.categories)
        sub_names = [f"{cats[c]}_{j}" for j, c in enumerate(sub_cat)]
        frame = pd.DataFrame(
            {
                "impression_id": imp,
                "user_id": user[imp],
                "news_id": item,
                "position": position,
                "is_top_3": d.astype(np.int64),
                "clicked": y,
                "history_len": hist.astype(np.int64),
                "candidate_set_size": size[imp],
                "hour": hour[imp],
                "day_of_week": dow[imp],
                "category": pd.Categorical.from_codes(cat, categories=list(p.categories)),
                "subcategory": pd.Categorical.from_codes(item_sub[item], categories=sub_names),
                "title_length": title[item],
                "abstract_length": abstract[item],
                "item_exposures": exposures,
                "log_item_exposures": log_exp,
                "log_history_len": log_hist,
                "log_candidate_set_size": np.log(s),
            }
        )
        frame["history_bucket"] = pd.cut(
            frame["history_len"], bins=list(p.history_bins), labels=list(p.history_labels)
        )
        frame["candidate_set_bucket"] = pd.cut(
            frame["candidate_set_size"],
            bins=list(p.size_bins),
            labels=list(p.size_labels),
            include_lowest=True,
        )
        frame["item_exposure_quartile"] = pd.qcut(
            frame["item_exposures"].rank(method="first"),
            q=4,
            labels=["Q1 lowest", "Q2", "Q3", "Q4 highest"],
        )
        frame["time_of_day"] = pd.cut(
            frame["hour"], bins=list(p.hour_bins), labels=list(p.hour_labels)
        )

        values: dict[str, float] = {"ATE": float(effect.mean()), "ATT": float(effect[d].mean())}
        for col in SEGMENT_COLUMNS:
            codes = frame[col].cat.codes.to_numpy()
            levels = frame[col].cat.categories
            cnt = np.bincount(codes, minlength=len(levels))
            tot = np.bincount(codes, weights=effect, minlength=len(levels))
            for j, level in enumerate(levels):
                if cnt[j]:
                    values[f"segment.{col}.{level}"] = float(tot[j] / cnt[j])
        roles = Roles(
            treatment="is_top_3",
            outcome="clicked",
            covariates=COVARIATES,
            segments=SEGMENT_COLUMNS,
            cluster="user_id" if p.cluster_by_user else None,
        )
        return Simulated(Dataset(frame, roles), Truth(values=values, target=None))


USERS_4000 = (
    "dgp=position_bias",
    "dgp.n_rows=4000",
    "dgp.n_users=100",
    "dgp.n_items=300",
    "dgp.n_subcategories=17",
    "dgp.size_median=8",
    "dgp.click_intercept=-2.5",
    "dgp.user_top_k_sd=1.2",
    "dgp.cluster_by_user=true",
    "mc.target=ATE",
)
"""4,000 rows in about 320 impressions of 100 users (about three each) whose top-3 effects
share a user shift (SD 1.2 on the log-odds scale), clustered by user; clicks made common
(intercept -2.5, about a fifth of rows) so that a small sample carries enough of them.
``aipw``/analytic at its defaults, R = 600: user-clustered coverage 0.962, model SE relative
error +0.041 +- 0.031; the unclustered SE of the same fits is 0.79 of the empirical SE
(coverage 0.883), the clustered one 1.33 times it on average."""


def user_clustered_world(note: str) -> World:
    """The user-clustered ``position_bias`` world (:data:`USERS_4000`), analytic inference."""
    return World("users_clustered", USERS_4000, inferences=frozenset({"analytic"}), note=note)
