"""Data loading, validation, encoding, standardization, splits, batches, shipped datasets."""

from __future__ import annotations

import json
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import sklearn.datasets
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import LabelEncoder, OneHotEncoder, StandardScaler

from descend import data
from descend.data import (
    Encoding,
    Standardizer,
    as_arrays,
    dataset_names,
    load,
    load_dataset,
    train_validation_split,
)
from descend.data import tables as _tabular
from descend.errors import DataError, DescendTypeError, DescendWarning, InputError


@pytest.fixture(params=["pandas", "csv-module"])
def reader(request, monkeypatch):
    """Run a test with pandas, then as if pandas were not installed."""
    if request.param == "csv-module":
        monkeypatch.setattr(_tabular, "_pandas", lambda: None)
    return request.param


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------ shipped datasets

SKLEARN_LOADERS = {
    "breast_cancer": sklearn.datasets.load_breast_cancer,
    "diabetes": lambda: sklearn.datasets.load_diabetes(scaled=False),
    "digits": sklearn.datasets.load_digits,
    "iris": sklearn.datasets.load_iris,
}


def test_dataset_names_lists_the_shipped_datasets():
    assert dataset_names() == sorted(SKLEARN_LOADERS)


@pytest.mark.parametrize("name", sorted(SKLEARN_LOADERS))
def test_shipped_dataset_equals_scikit_learn(name):
    reference = SKLEARN_LOADERS[name]()
    exact = load_dataset(name, dtype="float64")
    np.testing.assert_array_equal(exact.X, reference.data)
    np.testing.assert_array_equal(exact.y, reference.target)
    assert exact.feature_names == tuple(reference.feature_names)
    if "target_names" in reference:
        assert tuple(str(c) for c in exact.classes) == tuple(map(str, reference.target_names))
        assert exact.y.dtype == np.int32
    default = load_dataset(name)
    assert default.X.dtype == np.float32
    np.testing.assert_array_equal(default.X, reference.data.astype(np.float32))


def test_unknown_dataset_name_suggests_the_closest():
    with pytest.raises(InputError, match="unknown dataset 'irsi'; did you mean 'iris'"):
        load_dataset("irsi")


# ------------------------------------------------------------ reading tables

FRAME = pd.DataFrame(
    {
        "age": [31.0, 45.5, 22.0, 60.0, 38.0],
        "city": ["Oslo", "Rome", "Oslo", "Lima", "Rome"],
        "income": [3.5, 4.0, 2.25, 5.0, 4.75],
        "bought": ["yes", "no", "no", "yes", "no"],
    }
)


def expected_features(frame, numeric, categorical):
    """Oracle: scikit-learn's OneHotEncoder (sorted categories) beside the numeric columns."""
    blocks = []
    for name in frame.columns:
        if name in categorical:
            encoder = OneHotEncoder(sparse_output=False).fit(frame[[name]])
            blocks.append(encoder.transform(frame[[name]]))
        elif name in numeric:
            blocks.append(frame[[name]].to_numpy(dtype=float))
    return np.concatenate(blocks, axis=1)


def test_csv_is_read_with_one_hot_categories_and_encoded_target(tmp_path, reader):
    path = tmp_path / "people.csv"
    FRAME.to_csv(path, index=False)
    dataset = load(path, dtype="float64")
    np.testing.assert_array_equal(dataset.X, expected_features(FRAME, {"age", "income"}, {"city"}))
    np.testing.assert_array_equal(dataset.y, LabelEncoder().fit_transform(FRAME["bought"]))
    assert dataset.classes == ("no", "yes")
    assert dataset.target_name == "bought"
    assert dataset.feature_names == ("age", "city=Lima", "city=Oslo", "city=Rome", "income")
    assert dataset.categories == {"city": ("Lima", "Oslo", "Rome")}
    assert (dataset.n_samples, dataset.n_features) == (5, 5)
    assert dataset.X.dtype == np.float64 and dataset.y.dtype == np.int32


@pytest.mark.parametrize("kind", ["frame", "parquet", "tsv", "txt-semicolons"])
def test_every_source_gives_the_same_dataset(tmp_path, kind):
    reference = load(FRAME)
    if kind == "frame":
        source = FRAME
    elif kind == "parquet":
        source = tmp_path / "people.parquet"
        FRAME.to_parquet(source)
    elif kind == "tsv":
        source = tmp_path / "people.tsv"
        FRAME.to_csv(source, sep="\t", index=False)
    else:
        source = tmp_path / "people.txt"
        FRAME.to_csv(source, sep=";", index=False)
    dataset = load(source)
    np.testing.assert_array_equal(dataset.X, reference.X)
    np.testing.assert_array_equal(dataset.y, reference.y)
    assert dataset.encoding == reference.encoding


def test_target_and_features_can_be_chosen(tmp_path, reader):
    path = tmp_path / "people.csv"
    FRAME.to_csv(path, index=False)
    dataset = load(path, target="income", features=["age"])
    np.testing.assert_array_equal(dataset.X[:, 0], FRAME["age"].astype(np.float32))
    np.testing.assert_array_equal(dataset.y, FRAME["income"].astype(np.float32))
    assert dataset.classes is None and dataset.y.dtype == np.float32


def test_listed_categorical_columns_are_one_hot_even_when_numeric(reader, tmp_path):
    path = write(tmp_path, "zone,size,price\n3,1.0,10\n1,2.0,20\n3,3.0,30\n")
    dataset = load(path, categorical=["zone"], dtype="float64")
    assert dataset.feature_names == ("zone=1", "zone=3", "size")
    np.testing.assert_array_equal(dataset.X[:, :2], [[0, 1], [1, 0], [0, 1]])


def test_numeric_labels_are_sorted_by_value_and_missing_stays_missing(reader, tmp_path):
    path = write(tmp_path, "zone,size,grade\n10,1.0,3\n2,2.0,1\n,3.0,10\n1,4.0,3\n")
    dataset = load(path, categorical=["zone", "grade"], nan_policy="impute_mean")
    assert dataset.categories == {"zone": ("1", "2", "10")}
    assert dataset.classes == ("1", "3", "10") and dataset.y.tolist() == [1, 0, 2, 1]
    np.testing.assert_allclose(dataset.X[2, :3], [1 / 3, 1 / 3, 1 / 3])


def test_a_byte_order_mark_is_not_part_of_the_first_name(reader, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffa,b\n1,2\n".encode())
    assert load(path).feature_names == ("a",)


def test_pandas_categorical_dtype_keeps_its_declared_order():
    frame = pd.DataFrame(
        {
            "size": pd.Categorical(["S", "L", "M"], categories=["S", "M", "L"]),
            "y": pd.Categorical(["lo", "hi", "lo"], categories=["lo", "hi"]),
        }
    )
    dataset = load(frame)
    assert dataset.feature_names == ("size=S", "size=M", "size=L")
    assert dataset.classes == ("lo", "hi") and dataset.y.tolist() == [0, 1, 0]


def test_encoding_applies_the_same_columns_to_new_data_after_a_json_round_trip():
    dataset = load(FRAME)
    encoding = Encoding.from_dict(json.loads(json.dumps(dataset.encoding.to_dict())))
    assert encoding == dataset.encoding
    new = FRAME.drop(columns="bought").iloc[[3, 0]]
    np.testing.assert_array_equal(encoding.features(new, dtype="float64"), dataset.X[[3, 0]])
    np.testing.assert_array_equal(encoding.decode([1, 0]), ["yes", "no"])


def test_encoding_reads_new_files_without_the_target(tmp_path, reader):
    encoding = load(FRAME).encoding
    path = tmp_path / "new.csv"
    FRAME.drop(columns="bought").to_csv(path, index=False)
    np.testing.assert_array_equal(encoding.features(path), load(FRAME).X)
    FRAME.drop(columns="income").to_csv(path, index=False)
    with pytest.raises(DataError, match="lacks the feature column 'income'"):
        encoding.features(path)


def test_new_files_are_read_with_their_own_delimiter_and_a_fix_that_applies(tmp_path, reader):
    encoding = load(FRAME).encoding
    path = tmp_path / "new.csv"
    FRAME.to_csv(path, sep=";", index=False)
    np.testing.assert_array_equal(encoding.features(path), load(FRAME).X)
    path.write_text(path.read_text() + "1;2\n")
    with pytest.raises(
        DataError, match=r"split at ';'.*pandas\.read_csv\(path, sep=','\) and pass"
    ):
        encoding.features(path)  # features takes no sep: the DataFrame is the way


def test_unknown_category_at_prediction_time_is_named():
    encoding = load(FRAME).encoding
    new = pd.DataFrame({"age": [1.0], "city": ["Rom"], "income": [2.0]})
    with pytest.raises(DataError, match=r"'Rom'; did you mean 'Rome'.*not seen in the training"):
        encoding.features(new, dtype="float64")


@settings(max_examples=30, deadline=None)
@given(
    values=hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 6), st.integers(2, 4)),
        elements=st.floats(-1e9, 1e9, allow_nan=False, allow_subnormal=False),
    ),
    use_pandas=st.booleans(),
)
def test_numeric_csv_round_trips_exactly(tmp_path_factory, values, use_pandas):
    path = tmp_path_factory.mktemp("csv") / "values.csv"
    columns = [f"c{j}" for j in range(values.shape[1])]
    pd.DataFrame(values, columns=columns).to_csv(path, index=False, float_format="%.17g")
    original = _tabular._pandas
    try:
        if not use_pandas:
            _tabular._pandas = lambda: None
        dataset = load(path, dtype="float64")
    finally:
        _tabular._pandas = original
    np.testing.assert_array_equal(dataset.X, values[:, :-1])
    # A target of a few whole numbers reads as classes: y holds codes into them.
    y = dataset.y if dataset.classes is None else np.asarray(dataset.classes)[dataset.y]
    np.testing.assert_array_equal(y, values[:, -1])


# ------------------------------------------------------------ missing values

NAN_CSV = "a,b,y\n1,2,0\n,4,1\n5,inf,0\n7,8,1\n"


def test_nan_policy_raise_counts_and_locates_the_bad_cells(tmp_path, reader):
    path = write(tmp_path, NAN_CSV)
    with pytest.raises(DataError) as info:
        load(path)
    message = str(info.value)
    assert "2 missing or non-finite feature values" in message
    assert "(row 3, column 'a'), (row 4, column 'b')" in message
    assert "nan_policy='drop'" in message and "nan_policy='impute_mean'" in message


def test_nan_policy_drop_matches_pandas_dropna(tmp_path, reader):
    dataset = load(write(tmp_path, NAN_CSV), nan_policy="drop", dtype="float64")
    frame = pd.read_csv(write(tmp_path, NAN_CSV)).replace(np.inf, np.nan).dropna()
    np.testing.assert_array_equal(dataset.X, frame[["a", "b"]].to_numpy())
    np.testing.assert_array_equal(dataset.y, frame["y"].to_numpy())


def test_nan_policy_impute_mean_matches_scikit_learn(tmp_path, reader):
    dataset = load(write(tmp_path, NAN_CSV), nan_policy="impute_mean", dtype="float64")
    frame = pd.read_csv(write(tmp_path, NAN_CSV)).replace(np.inf, np.nan)
    expected = SimpleImputer(strategy="mean").fit_transform(frame[["a", "b"]])
    np.testing.assert_allclose(dataset.X, expected, rtol=1e-15)


def test_missing_target_is_dropped_but_never_imputed(tmp_path, reader):
    path = write(tmp_path, "a,y\n1,0\n2,\n3,1\n")
    with pytest.raises(
        DataError, match=r"target 'y' of .* 1 missing .* at row 3.*nan_policy='drop'"
    ):
        load(path, nan_policy="impute_mean")
    assert load(path, nan_policy="drop").y.tolist() == [0.0, 1.0]


def test_missing_category_is_imputed_with_category_frequencies():
    frame = pd.DataFrame({"c": ["a", None, "b", "a"], "y": [1.0, 2.0, 3.0, 4.0]})
    dataset = load(frame, nan_policy="impute_mean", dtype="float64")
    np.testing.assert_allclose(dataset.X[1], [2 / 3, 1 / 3])


# ------------------------------------------------------------ file errors


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty; a data file needs a header line"),
        ("\n  \n", "is empty"),
        ("a,b,y\n", r"has a header \(a, b, y\) but no data rows"),
        ("a,b,y\n1,2,3\n4,5,6,7\n", "line 3 has 4 fields but the header has 3"),
        ("a,b,y\n1,2,3\n4,5\n", "line 3 has 2 fields but the header has 3"),
        ("a,b,y\n1,2,3\n4,5,6\n7,8,9,10\n", "line 4 has 4 fields"),
        ("a,b,y\n1,2\n", "line 2 has 2 fields"),
        ("a,b,y\n1,2,3\n4,x,6\n7,8,9\n", r"column 'b' .* numbers, but row 3 has the text 'x'"),
        ("y\n1\n2\n", "no feature columns besides the target 'y'"),
    ],
)  # fmt: skip
def test_bad_files_are_explained(tmp_path, reader, content, message):
    with pytest.raises(DataError, match=message):
        load(write(tmp_path, content))


def test_missing_file_error_names_the_path(tmp_path, reader):
    with pytest.raises(DataError, match=r"nothere\.csv' does not exist"):
        load(tmp_path / "nothere.csv")


def test_unknown_target_lists_columns_and_suggests(tmp_path, reader):
    path = write(tmp_path, "height,weight,price\n1,2,3\n")
    with pytest.raises(DataError, match=r"'prize' .*did you mean 'price'.*height, weight, price"):
        load(path, target="prize")


def test_unknown_suffix_lists_the_formats(tmp_path):
    with pytest.raises(DataError, match=r"suffix '\.xlsx'; use \.csv"):
        load(write(tmp_path, "a,b\n1,2\n", "book.xlsx"))


def test_parquet_without_pandas_says_what_to_install(tmp_path, monkeypatch):
    path = tmp_path / "people.parquet"
    FRAME.to_parquet(path)
    monkeypatch.setattr(_tabular, "_pandas", lambda: None)
    with pytest.raises(DataError, match=r'pip install "descend\[data\]"'):
        load(path)


def test_a_file_that_is_not_parquet_is_refused(tmp_path):
    with pytest.raises(DataError, match="as Parquet"):
        load(write(tmp_path, "a,b\n1,2\n", "fake.parquet"))


def test_unlisted_text_column_is_refused_when_categorical_is_a_list(tmp_path, reader):
    path = write(tmp_path, "city,size,y\nOslo,1,0\nRome,2,1\n")
    with pytest.raises(DataError, match=r"column 'city' .* \(categorical=\['size', 'city'\]\)"):
        load(path, categorical=["size"])


def test_stray_text_in_a_dataframe_names_the_index_label():
    frame = pd.DataFrame({"x": [1.0, "oops", 3.0], "y": [0, 1, 0]}, index=["p", "q", "r"])
    with pytest.raises(DataError, match=r"index 'q' has the text 'oops'"):
        load(frame)


def test_dates_are_refused_with_a_hint():
    frame = pd.DataFrame({"t": pd.to_datetime(["2024-01-01", "2024-01-02"]), "y": [1.0, 2.0]})
    with pytest.raises(DataError, match="dates or durations"):
        load(frame)


def test_non_tabular_source_is_a_type_error():
    with pytest.raises(DescendTypeError, match="as_arrays"):
        load(np.zeros((3, 2)))


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"nan_policy": "skip"}, "unknown nan_policy 'skip'"), ({"dtype": "int32"}, "floating")],
)
def test_bad_options_are_refused(kwargs, error):
    with pytest.raises(InputError, match=error):
        load(FRAME, **kwargs)


# ------------------------------------------------------------ delimiters and decimal commas

EUROPEAN = pd.DataFrame(
    {
        "price": [1.5, -0.25, 1234.5, 3.0],
        "city": ["Oslo", "Rome", "Oslo", "Lima"],
        "rooms": [2, 3, 4, 2],
        "sold": [0, 1, 1, 0],
    }
)


@pytest.mark.parametrize(
    ("suffix", "sep"),
    [(".csv", ";"), (".csv", "\t"), (".csv", "|"), (".tsv", ";"), (".txt", ";"), (".txt", ",")],
)
def test_the_delimiter_is_detected_whatever_the_suffix(tmp_path, reader, suffix, sep):
    path = tmp_path / f"people{suffix}"
    FRAME.to_csv(path, sep=sep, index=False)
    dataset = load(path, dtype="float64")
    oracle = pd.read_csv(path, sep=sep)  # pandas told the delimiter
    np.testing.assert_array_equal(dataset.X, expected_features(oracle, {"age", "income"}, {"city"}))
    assert dataset.feature_names == ("age", "city=Lima", "city=Oslo", "city=Rome", "income")


def test_decimal_commas_are_read_as_numbers_with_a_warning(tmp_path, reader):
    path = tmp_path / "prices.csv"
    EUROPEAN.to_csv(path, sep=";", decimal=",", index=False)
    assert "1,5" in path.read_text()  # written the way spreadsheets in Europe write it
    with pytest.warns(DescendWarning, match=r"read column 'price' of .* decimal comma") as record:
        dataset = load(path, target="sold", dtype="float64")
    assert record[0].filename == __file__  # the caller's line, not the library's
    oracle = pd.read_csv(path, sep=";", decimal=",", thousands=".")
    np.testing.assert_array_equal(dataset.X[:, 0], oracle["price"])
    assert dataset.feature_names[0] == "price"  # a number, not one-hot categories


def test_a_given_sep_overrides_the_detection(tmp_path, reader):
    path = write(tmp_path, "a;b,c;y\n1;2,5;0\n3;4,5;1\n")  # a ';' file whose cells hold commas
    with pytest.warns(DescendWarning, match="decimal comma"):
        dataset = load(path, sep=";", dtype="float64")
    np.testing.assert_array_equal(dataset.X, pd.read_csv(path, sep=";", decimal=",")[["a", "b,c"]])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a;b;y\n1,5;2;0\n2.5;3;1\n", r"column 'a' .* decimal comma \('1,5'\) and with a decimal "
                                      r"point \('2.5'\)"),
        ('a,b,y\n"1,500",2,0\n"2,250",3,1\n', r"'1,500' in a comma-delimited file: is the comma a "
                                              "decimal mark or a thousands separator"),
        ("a;b;y\n1;2;0\n3;4;0;5\n", r"line 3 has 4 fields but the header has 3, split at ';'.*"
                                    r"sep=','"),
    ],
)  # fmt: skip
def test_ambiguous_numbers_and_ragged_lines_name_the_delimiter_and_the_fix(
    tmp_path, reader, content, message
):
    with pytest.raises(DataError, match=message):
        load(write(tmp_path, content))


def test_a_wrong_sep_is_named_with_the_right_one(tmp_path, reader):
    path = write(tmp_path, "a;b;y\n1;2;0\n3;4;1\n")
    with pytest.raises(DataError, match=r"split at ',': a;b;y\); .* split at ';', give sep=';'"):
        load(path, sep=",")


def test_a_text_column_with_a_few_comma_numbers_stays_categorical(tmp_path, reader):
    path = write(tmp_path, "size;y\nsmall;0\nlarge;1\n1,5;0\nsmall;1\nlarge;0\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DescendWarning)  # no decimal commas read here
        dataset = load(path)
    assert dataset.feature_names == ("size=1,5", "size=large", "size=small")


@pytest.mark.parametrize(("sep", "message"), [(";;", "one character"), ("\n", "one character"),
                                              (3, "one character")])  # fmt: skip
def test_a_bad_sep_is_refused(tmp_path, sep, message):
    with pytest.raises(InputError, match=message):
        load(write(tmp_path, "a,y\n1,2\n"), sep=sep)


def test_sep_is_refused_for_sources_without_delimiters(tmp_path):
    with pytest.raises(InputError, match="a DataFrame has none"):
        load(FRAME, sep=";")


# ------------------------------------------------------------ arrays in memory


@pytest.mark.parametrize("container", ["list", "numpy", "jax", "pandas"])
def test_as_arrays_accepts_common_containers(container):
    X = np.arange(12.0).reshape(4, 3)
    y = np.array([0.5, 1.5, 2.5, 3.5])
    wrap = {
        "list": lambda a: a.tolist(),
        "numpy": lambda a: a,
        "jax": jnp.asarray,
        "pandas": lambda a: pd.DataFrame(a) if a.ndim == 2 else pd.Series(a),
    }[container]
    result = as_arrays(wrap(X), wrap(y))
    assert result.X.dtype == np.float32 and result.y.dtype == np.float32 and result.classes is None
    np.testing.assert_array_equal(result.X, X)
    np.testing.assert_array_equal(result.y, y)


@pytest.mark.parametrize(
    ("X", "y", "message"),
    [
        (np.arange(5.0), np.zeros(5), r"1-D shape \(5,\); use X.reshape\(-1, 1\)"),
        (np.zeros((2, 2, 2)), np.zeros(2), r"X.reshape\(len\(X\), -1\)"),
        (np.zeros((3, 0)), np.zeros(3), "zero features"),
        (np.zeros((0, 2)), np.zeros(0), "no samples"),
        (np.zeros((5, 2)), np.zeros(4), r"X has 5 samples \(rows\) but y has 4"),
        ([["1", "a"], ["2", "3"]], [0, 1], r"cannot become float: entry \(row 0, column 1\)"),
        (np.ones((2, 1), complex), [0, 1], "complex"),
        ([[1.0], [2.0, 3.0]], [0, 1], "not a rectangular array"),
        (pd.DataFrame({"c": ["a", "b"]}), [0, 1], "non-numeric columns"),
    ],
)  # fmt: skip
def test_as_arrays_explains_bad_input(X, y, message):
    with pytest.raises(DataError, match=message):
        as_arrays(X, y)


def test_as_arrays_reports_nan_positions_and_the_options():
    X = np.ones((6, 3))
    X[[1, 4], [2, 0]] = np.nan
    X[5, 1] = -np.inf
    with pytest.raises(DataError) as info:
        as_arrays(X, np.zeros(6))
    message = str(info.value)
    assert "X has 3 missing or non-finite feature values" in message
    assert "(row 1, column 2), (row 4, column 0), (row 5, column 1)" in message
    assert "nan_policy='drop'" in message and "nan_policy='impute_mean'" in message


def test_as_arrays_nan_policies_match_numpy_and_scikit_learn():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 4))
    X[rng.random(X.shape) < 0.1] = np.nan
    y = rng.normal(size=20)
    dropped = as_arrays(X, y, nan_policy="drop", dtype="float64")
    keep = ~np.isnan(X).any(axis=1)
    np.testing.assert_array_equal(dropped.X, X[keep])
    np.testing.assert_array_equal(dropped.y, y[keep])
    imputed = as_arrays(X, y, nan_policy="impute_mean", dtype="float64")
    np.testing.assert_allclose(imputed.X, SimpleImputer().fit_transform(X), rtol=1e-14)


@pytest.mark.parametrize(
    "labels", [["spam", "ham", "spam"], [-1, 1, 1], [0.0, 1.0, 0.0], [True, False, True], [3, 7, 3]]
)
def test_binary_labels_are_encoded_like_label_encoder(labels):
    result = as_arrays(np.zeros((3, 1)), labels, task="binary")
    encoder = LabelEncoder().fit(labels)
    np.testing.assert_array_equal(result.y, encoder.transform(labels))
    np.testing.assert_array_equal(result.classes, encoder.classes_)
    assert result.y.dtype == np.int32


def test_multiclass_labels_are_encoded_like_label_encoder():
    labels = np.array([2, 0, 5, 5, 2])
    result = as_arrays(np.zeros((5, 2)), labels, task="multiclass")
    np.testing.assert_array_equal(result.y, LabelEncoder().fit_transform(labels))
    np.testing.assert_array_equal(result.classes, [0, 2, 5])


@pytest.mark.parametrize(
    ("labels", "task", "message"),
    [
        ([1, 1, 1], "binary", r"single class \(1\); binary classification needs at least two"),
        (["a", "a", "a"], "multiclass", "single class"),
        ([0, 1, 2], "binary", r"needs two classes but y has 3 .*use task='multiclass'"),
        ([0.0, np.nan, 1.0], "binary", "y has 1 missing"),
    ],
)
def test_label_problems_are_explained(labels, task, message):
    with pytest.raises(DataError, match=message):
        as_arrays(np.zeros((3, 1)), labels, task=task)


def test_unknown_task_suggests():
    with pytest.raises(InputError, match="did you mean 'binary'"):
        as_arrays(np.zeros((2, 1)), [0, 1], task="binray")


# ------------------------------------------------------------ standardization


def test_standardizer_matches_standard_scaler_and_round_trips_json():
    rng = np.random.default_rng(1)
    X = rng.normal(3.0, 2.0, size=(50, 4))
    X[:, 2] = 7.0  # constant column: scale 1, mapped to 0
    scaler = Standardizer.fit(X)
    reference = StandardScaler().fit(X)
    np.testing.assert_allclose(scaler.mean, reference.mean_, rtol=1e-15)
    np.testing.assert_allclose(scaler.scale, reference.scale_, rtol=1e-15)
    np.testing.assert_allclose(scaler.transform(X), reference.transform(X), atol=1e-14)
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(X)), X, rtol=1e-14)
    restored = Standardizer.from_dict(json.loads(json.dumps(scaler.to_dict())))
    np.testing.assert_array_equal(restored.mean, scaler.mean)
    np.testing.assert_array_equal(restored.scale, scaler.scale)


def test_standardizer_keeps_float32_and_works_inside_jit():
    X = np.random.default_rng(2).normal(size=(10, 3)).astype(np.float32)
    scaler = Standardizer.fit(X)
    assert scaler.transform(X).dtype == np.float32
    jitted = jax.jit(scaler.transform)(jnp.asarray(X))
    assert jitted.dtype == jnp.float32
    np.testing.assert_allclose(jitted, StandardScaler().fit_transform(X), rtol=1e-5, atol=1e-6)


def test_standardizer_refuses_nan():
    with pytest.raises(DataError, match="finite"):
        Standardizer.fit([[1.0], [np.nan]])


# ------------------------------------------------------------ split and batches


@pytest.mark.parametrize(
    ("n_samples", "fraction", "seed"), [(10, 0.2, 0), (7, 0.3, 5), (100, 0.5, 1)]
)
def test_split_follows_the_documented_rule(n_samples, fraction, seed):
    X = np.arange(n_samples * 2).reshape(n_samples, 2)
    y = np.arange(n_samples)
    X_train, X_val, y_train, y_val = train_validation_split(X, y, fraction, seed)
    perm = np.random.default_rng(seed).permutation(n_samples)
    n_validation = math.ceil(fraction * n_samples)
    np.testing.assert_array_equal(y_val, np.sort(perm[:n_validation]))
    np.testing.assert_array_equal(y_train, np.sort(perm[n_validation:]))
    np.testing.assert_array_equal(X_val, X[y_val])
    np.testing.assert_array_equal(X_train, X[y_train])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((np.zeros((1, 1)), [0], 0.5), "leaves an empty part"),
        ((np.zeros((4, 1)), [0], 0.5), "y has 1"),
        ((np.zeros((4, 1)), [0] * 4, 1.0), r"fraction must be in \[0.0, 1.0\)"),
        ((np.zeros((4, 1)), [0] * 4, 0.0), r"fraction must be in \(0, 1\)"),
    ],
)  # fmt: skip
def test_split_refuses_bad_arguments(args, message):
    with pytest.raises(InputError, match=message):
        train_validation_split(*args)


def test_module_exports_what_it_documents():
    for name in data.__all__:
        assert hasattr(data, name)
