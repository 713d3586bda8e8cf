"""The graph report (`tools.graphinfo`): node counts and the ops inside each scan."""
from symlstm import ModelConfig


def test_graph_report_counts_and_scan_ops():
    from symlstm.tools.graphinfo import step_graph, training_graph_report

    cfg = ModelConfig(embedding=4, hidden=6)
    assert "h_tm1" in step_graph(cfg) and "Sigmoid" in step_graph(cfg)
    r = training_graph_report(cfg, vocab_size=10, T=5, B=2)
    assert r["nodes_after"] < r["nodes_before"]
    assert r["float64_outputs"] == 0
    names = [s["name"] for s in r["scans"]]
    assert any("grad_of" in n for n in names) and "layer0" in names


def test_the_mogrifiers_step_shows_its_rounds():
    from symlstm.tools.graphinfo import step_graph

    text = step_graph(ModelConfig(cell="mogrifier", mogrifier_rounds=2, embedding=4, hidden=6))
    assert "x_t" in text and "Q1" in text and "R2" in text and "Q3" not in text
