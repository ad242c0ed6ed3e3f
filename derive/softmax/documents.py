"""What the two generated documents say: their sections, texts, figures and worked-example
inputs, as data.

The machinery (:mod:`derive.document`, :mod:`derive.latex`, :mod:`derive.markdown`)
renders these; it decides how things look, this module decides what is said and in which
order. Texts are plain paragraphs with ``$...$`` math (the subset that both LaTeX and GitHub's Markdown render); a
:class:`Proof` names a derivation of the catalogue by key, a :class:`Figure` or
:class:`Block` names something the report stage computes (a plot, a table of numbers
from the generated code) by key.

The learner's document follows the source material in order: the FC layer, softmax (and
computing it without overflow), the softmax loss, cross entropy, the gradient and what it
does, one example on numbers with one step of training. Everything a developer needs (the
checking protocol, the other derivations, the automatic ones, the kernels, the ULP tables
and error plots) is in the developer document.
"""
from __future__ import annotations

from ..document import Block, Display, Document, Figure, Proof, Section, Text

# --------------------------------------------------------------------------- shared content
#: (symbol, shape, meaning): every name the learner's formulas use (a test holds them to it)
NOTATION = (
    ("T", "", "the number of classes"),
    ("N", "", "the number of features: 100 feature maps of $4 \\times 4$ give $N = 100 \\cdot 4 \\cdot 4 = 1600$"),
    ("x", r"N \times 1", "the features, flattened into one column; $x_n$ is feature $n$"),
    ("W, W_{pq}", r"T \times N",
     "weights of the fully connected layer, one row per class; $W_{pq}$ is row $p$, column $q$"),
    ("b", r"T \times 1", "biases"),
    ("a = W x + b", r"T \times 1", "logits (scores), $a_i = \\sum_n W_{in} x_n + b_i$; any real value"),
    ("Z = \\sum_k e^{a_k}", "", "the normalizer"),
    ("S = \\operatorname{softmax}(a)", r"T \times 1", "probabilities, $S_j = e^{a_j} / Z$"),
    ("c", "", "the true class, $1 \\le c \\le T$"),
    ("y", r"T \times 1", "the label: one-hot $y = e_c$, or any probability vector"),
    ("L", "", "the softmax loss $-\\sum_j y_j \\log S_j$; for one-hot $y$, $L = -\\log S_c$"),
    ("\\log", "", "the natural logarithm (base $e \\approx 2.718$): $-\\log 0.6 \\approx 0.511$"),
    ("e_c", r"T \times 1", "the unit vector of class $c$: 1 at $c$, 0 elsewhere"),
    ("\\mathbf{1}", r"T \times 1", "the vector of ones"),
    ("\\delta_{ij}", "", "the Kronecker delta: 1 if $i = j$, else 0 (so $y_j = \\delta_{jc}$)"),
    ("i, j, k;\\ n", "", "class indices, $1 \\dots T$; $n$ indexes the features, $1 \\dots N$"),
    ("m", "", "the largest logit, $m = \\max_k a_k$"),
    ("t, u, w, \\delta", "", "real numbers in a rule ($t$ a shift, $\\delta > 0$ a gap)"),
    ("H(y, S)", "",
     "cross entropy (section 4); $H(y)$ is the entropy of $y$, $\\mathrm{KL}$ the Kullback-Leibler divergence"),
    ("\\eta", "", "the learning rate of a gradient-descent step"),
    ("\\operatorname{diag}(S),\\ x^\\top", "",
     "the $T \\times T$ matrix with $S$ on its diagonal; the transpose of $x$"),
)

#: the inputs of the worked example of section 6 (classes 1-based, as in the math)
WORKED_EXAMPLE = {
    "x": (1.0, 0.5, -1.0, 2.0),
    "W": ((0.2, -0.5, 0.1, 0.4),
          (0.6, 0.3, -0.2, 0.3),
          (-0.3, 0.8, 0.5, 0.2)),
    "b": (0.1, 0.0, -0.2),
    "c": 2,
}

#: the learning rate of the worked gradient-descent step
LEARNING_RATE = 0.1

#: the source's overflow example: the logits [1, 2, 3] shifted by 1000
BIG_LOGITS = (1001.0, 1002.0, 1003.0)

#: the "initial loss is about log T" check: T classes, N features, B samples, weights of this scale
INITIAL_LOSS = {"T": 5, "N": 1600, "B": 1000, "scale": 1e-4, "seed": 0}

#: the forward and backward pass in plain NumPy, as a teacher writes it (run by the tests
#: against numeric on the worked example)
NUMPY_PASS = """\
import numpy as np

def forward_backward(x, W, b, c):
    \"\"\"Loss and gradients of one sample; c is the true class, 0-based as in NumPy.\"\"\"
    a = W @ x + b                   # logits, T
    e = np.exp(a - a.max())         # shift by the largest logit: no overflow
    S = e / e.sum()                 # softmax
    L = -np.log(S[c])               # the loss
    da = S.copy()
    da[c] -= 1                      # dL/da = S - y
    return L, np.outer(da, x), da, W.T @ da   # L, dL/dW, dL/db, dL/dx

# one gradient-descent step, learning rate eta:
# L, dW, db, dx = forward_backward(x, W, b, c); W -= eta * dW; b -= eta * db
"""

#: how the worked example is shown: @name@ is replaced by a number or a vector computed by
#: the generated code (see derive.softmax.report.worked_values for the names)
WORKED_SHOWN = (
    Text("The inputs, and the label of class $c = @c@$:"),
    Display(r"x = @x@, \quad W = @W@, \quad b = @b@, \quad y = @y@"),
    Text("The FC layer gives the logits, softmax the probabilities:"),
    Display(r"a = W x + b = @a@, \qquad S = \operatorname{softmax}(a) = @S@"),
    Text("The largest logit is $a_{@top@}$, so the predicted class is @top@@top_is_true@. The loss is "
         "$L = -\\log S_{@c@} = -\\log @S_c@ \\approx @L@$, and the gradient with respect to the "
         "logits is $S - y$:"),
    Display(r"\frac{\partial L}{\partial a} = S - y = @grad@"),
    Text("Through the FC layer (section 5): $\\partial L/\\partial W = (S - y)\\, x^\\top$ "
         "($T \\times N$, the shape of $W$), $\\partial L/\\partial b = S - y$ and "
         "$\\partial L/\\partial x = W^\\top (S - y)$:"),
    Display(r"\frac{\partial L}{\partial W} = @dW@, \qquad \frac{\partial L}{\partial x} = @dx@"),
)

#: the logits of the softmax figure: a_1 moves, the others stay (the example [1, 2, 3])
SWEEP_LOGITS = (1.0, 2.0, 3.0)

STABLE_TEXT = (
    "The definitions overflow as written: $e^{a_j}$ is infinite past $a_j \\approx 709.8$, so "
    "softmax([1000, 0]) comes out as NaN. The usual fix -- subtract the largest logit $m = a_k$, which "
    "changes nothing by the shift rule -- avoids the overflow but still loses "
    "accuracy in two places. First, a loss below $10^{-16}$ (a confident, correct prediction) "
    "vanishes when $\\log \\sum_j e^{a_j - m}$ is formed as $\\log(1 + \\text{tiny})$; summing the "
    "terms $j \\ne k$ on their own and taking $\\operatorname{log1p}$ of that sum keeps every digit. "
    "Second, $a_j - m$ is rounded, and $\\exp$ turns an absolute error of its argument into a "
    "relative error of its value: for $|a_j - m| \\approx 700$ that is hundreds of ULPs. The "
    "generated code carries the rounding error of $a_j - m$ along exactly. The table shows three "
    "inputs where the plain formulas fail; the figures show the worst error over many inputs.")

PROTOCOL_TEXT = (
    "Every equation of both documents is a step of a derivation checked by softmax-derive's proof "
    "engine: SymPy shows each step equal to the one before it (or the stated inequality) for any "
    "number of classes $T$, and both sides are also evaluated at 40 digits on random inputs with "
    "$T = 1, 2, 3, 5, 8$, the smallest $T$ the statement needs and the next, and one random $T$ up "
    "to 12 (derivatives by numerical differentiation, not by SymPy). The reason for each step is "
    "printed beside it (in the Markdown version, in the numbered list below it).")

#: the post the learner's document follows, its follow-up (the gradient) and the post's own
#: reference, from which its pipeline figure comes
SOURCE = ("AI Zhi Lu, \"Convolutional neural network series: softmax, softmax loss and cross entropy\" "
          "(CSDN, in Chinese, 17 August 2017), https://blog.csdn.net/u014380165/article/details/77284921, "
          "and its follow-up on the gradient with respect to the logits, "
          "https://blog.csdn.net/u014380165/article/details/79632950. Its reference (and its pipeline "
          "figure's): Eli Bendersky, \"The Softmax function and its derivative\" (2016), "
          "https://eli.thegreenplace.net/2016/the-softmax-function-and-its-derivative/, also for the "
          "Jacobian in matrix form")

# --------------------------------------------------------------------------- the learner's document
LEARNER = Document(
    name="softmax_cross_entropy",
    title="Softmax, the softmax loss and cross entropy, derived step by step",
    intro=(
        Text("A classifier network ends in a fully connected layer that turns features into one "
             "score per class, a softmax that turns the scores into probabilities, and a loss that "
             "says how wrong those probabilities are. This document derives each piece and the "
             "gradient that training needs, shows what that gradient does, and follows one example "
             "through with numbers. It follows, in order, the blog post it is built on (cited in "
             "section 7), and needs only calculus."),
        Text("Every derivation is checked step by step by a computer algebra system, and every number "
             "is computed by the library's code; how, and the code itself, are in the developers' "
             "document, softmax_cross_entropy_developers. All logarithms are natural (base $e$)."),
        Block("notation"),
    ),
    sections=(
        Section("1. From features to logits: the fully connected layer", "fc", (
            Text("The last convolutional layers produce feature maps; the fully connected (FC) layer "
                 "first flattens them into one column $x$ of $N$ numbers. With 100 feature maps of "
                 "$4 \\times 4$ values each, $x$ is $N \\times 1$ with $N = 100 \\cdot 4 \\cdot 4 = 1600$. "
                 "The layer has one row of weights per class: $W$ is $T \\times N$ and $b$ is "
                 "$T \\times 1$. Its output is the vector of logits"),
            Display(r"a = W x + b, \qquad a_i = \sum_{n=1}^{N} W_{in} x_n + b_i, \qquad a \in \mathbb{R}^{T}."),
            Figure("pipeline",
                   "The pipeline with its shapes: features $x$ ($N \\times 1$) through the FC layer "
                   "($W$ is $T \\times N$) to the logits ($T \\times 1$), softmax to the probabilities "
                   "($T \\times 1$), and the loss, which compares them with the label $y$.", width=0.95),
            Text("A logit can be any real number, negative or larger than one: it is a score, not a "
                 "probability. At test time the predicted class is $\\arg\\max_j a_j$; section 2 shows "
                 "that softmax keeps the order, so it is also $\\arg\\max_j S_j$. Training means "
                 "finding the $W$ and $b$ that make the loss small; section 5 gives the gradient it "
                 "needs and section 6 takes one step."),
        )),
        Section("2. Softmax: from scores to probabilities", "softmax", (
            Text("Softmax exponentiates each logit and divides by the sum of all of them, "
                 "$S_j = e^{a_j} / Z$ with $Z = \\sum_k e^{a_k}$. The outputs are positive and sum to 1, "
                 "so they can be read as the probabilities of the $T$ classes:"),
            Proof("softmax_positive"),
            Proof("softmax_sums_to_one"),
            Text("Each $S_j$ is therefore in $(0, 1)$ when $T \\ge 2$. Adding the same number to every "
                 "logit changes nothing, only differences between logits matter, and a larger logit "
                 "always gets a larger probability:"),
            Proof("softmax_shift"),
            Proof("softmax_ratio"),
            Proof("softmax_order"),
            Text("On numbers: the logits $a = [1, 2, 3]$, one class $j$ at a time."),
            Proof("example_softmax"),
            Block("softmax_example"),
            Text("The largest logit gets two thirds of the probability, though it is only 1 more than "
                 "the next: $S_3 / S_2 = e^{3 - 2} \\approx 2.718$ by the ratio rule."),
            Figure("softmax_sweep",
                   "Softmax of $a = [a_1, 2, 3]$ as $a_1$ moves and the other two logits stay fixed. "
                   "The three probabilities always sum to 1; the dots mark $a_1 = 1$, the example "
                   "$[0.0900, 0.2447, 0.6652]$. Once $a_1$ passes 3 it takes the largest share."),
            Text("**Computing softmax without overflow.** The shift rule with $t = -m$, where "
                 "$m = \\max_k a_k$ is the largest logit, gives the form every library uses:"),
            Display(r"S_j = \frac{e^{a_j - m}}{\sum_k e^{a_k - m}}, \qquad m = \max_k a_k."),
            Text("Every exponent is now at most 0, so nothing overflows, and the largest term of the "
                 "sum is $e^0 = 1$, so the sum is at least 1. The source's example: the logits "
                 "$[1001, 1002, 1003]$ give $e^{1001} = \\infty$ in floating point (anything past "
                 "$e^{709.78}$ is), and the formula as written returns @big_naive@. Shifted by "
                 "$m = 1003$ they become $[-2, -1, 0]$, the same differences as $[1, 2, 3]$, and "
                 "softmax returns @big_shifted@, the example above."),
        )),
        Section("3. The softmax loss", "loss", (
            Text("Training compares $S$ with the label $y$. With one true class $c$ the label is "
                 "one-hot, $y = e_c$, that is $y_j = \\delta_{jc}$, and the softmax loss "
                 "$L = -\\sum_j y_j \\log S_j$ keeps a single term: minus the log of the probability "
                 "given to the true class."),
            Proof("loss_one_hot"),
            Text("The source's three predictions for the same 5-class sample, true class $c = 4$ "
                 "(each checked step by step in the developers' document):"),
            Block("loss_examples"),
            Text("The first prediction is right (class 4 has the largest probability, 0.6). The other "
                 "two are wrong -- class 3 has the largest probability, 0.4 -- but not equally: the "
                 "third still gives the true class 0.3, the second only 0.1. The loss sees only the "
                 "true class's probability, and $-\\log$ is decreasing, so it orders them by how much "
                 "the true class was ruled out: confidently wrong costs most."),
            Proof("example_order"),
            Figure("neg_log",
                   "The loss of one sample, $-\\log S_c$, against the probability $S_c$ given to the "
                   "true class, with the three examples marked. It is 0 at $S_c = 1$ and grows "
                   "without bound as $S_c \\to 0$."),
            Text("**A check before training.** Small random weights give logits near 0, so every "
                 "class gets $S_j \\approx 1/T$ and the loss starts near $-\\log(1/T) = \\log T$. With "
                 "$T = @init_T@$ classes, $N = @init_N@$ features and weights of size $10^{-4}$, the "
                 "mean loss over @init_B@ random samples is @init_loss@, against "
                 "$\\log @init_T@ \\approx @init_logT@$. A first loss far from $\\log T$ points to a bug."),
        )),
        Section("4. Cross entropy is the softmax loss", "cross_entropy", (
            Text("The cross entropy of a label distribution $y$ and a predicted distribution $S$ is"),
            Display(r"H(y, S) = -\sum_j y_j \log S_j = L."),
            Text("It measures how far $S$ is from $y$. Adding and subtracting $\\sum_j y_j \\log y_j$ "
                 "splits it into the entropy of the label, "
                 "$H(y) = -\\sum_j y_j \\log y_j$, which does not depend on the network, and the "
                 "Kullback--Leibler divergence, which is $\\ge 0$ and is 0 only when $S = y$:"),
            Display(r"H(y, S) = H(y) + \mathrm{KL}(y \,\|\, S), \qquad "
                    r"\mathrm{KL}(y \,\|\, S) = \sum_j y_j \log \frac{y_j}{S_j}."),
            Text("For a one-hot label $H(y) = 0$ (with $0 \\log 0 = 0$), so minimizing the loss "
                 "minimizes the divergence, and $L = -\\log S_c$ is the negative log-likelihood of "
                 "the true class: training makes the observed labels as probable as it can. That is "
                 "why softmax loss and cross entropy name the same thing."),
            Text("The label does not have to be one-hot: any probability vector $y$ works (label "
                 "smoothing and knowledge distillation use such labels). With "
                 "$\\log S_j = a_j - \\log Z$ and $\\sum_j y_j = 1$ the loss takes a form that is easy "
                 "to differentiate:"),
            Proof("loss_soft_form"),
        )),
        Section("5. The gradient: from the loss back to the logits and the weights", "gradient", (
            Text("Training needs $\\partial L / \\partial a_i$. The loss depends on $a_i$ through every "
                 "$S_j$, so the derivative of softmax comes first, in two cases: an output with respect "
                 "to its own logit ($i = j$), and with respect to another logit ($i \\ne j$)."),
            Proof("jacobian_diagonal"),
            Proof("jacobian_offdiagonal"),
            Proof("jacobian"),
            Text("First route: the chain rule through $\\log S_j$ collects both cases. The diagonal "
                 "term gives $-y_i (1 - S_i)$, every other class gives $y_j S_i$, and because the "
                 "label sums to 1 almost everything cancels:"),
            Proof("loss_gradient_chain"),
            Text("Second route: the form of section 4 reaches the same result in two lines, and for a "
                 "one-hot label the gradient is $S$ with 1 subtracted at the true class:"),
            Proof("loss_gradient"),
            Proof("loss_gradient_one_hot"),
            Text("**What $S - y$ says.** For the true class the gradient is $S_c - 1 < 0$, for every "
                 "other class $S_j > 0$; every entry is in $(-1, 1)$ and they sum to 0. A step against "
                 "the gradient, $a \\leftarrow a - \\eta (S - y)$, raises the true logit by "
                 "$\\eta (1 - S_c)$ and lowers every other logit $a_j$ by $\\eta S_j$: the most "
                 "where the network put the most wrong probability. As $S \\to y$ the gradient "
                 "vanishes and learning stops by itself; a confidently wrong prediction ($S_c$ near 0) "
                 "gets the largest push."),
            Text("The FC layer passes the gradient on by the chain rule. Since "
                 "$\\partial a_j / \\partial W_{pq} = \\delta_{jp} x_q$, "
                 "$\\partial a_j / \\partial b_p = \\delta_{jp}$ and "
                 "$\\partial a_j / \\partial x_q = W_{jq}$:"),
            Proof("fc_grad_W"),
            Proof("fc_grad_b"),
            Proof("fc_grad_x"),
            Text("The same results can also be derived by the machine from the loss alone; the "
                 "developers' document shows those derivations."),
        )),
        Section("6. One example end to end, and one step of training", "worked", (
            Text("A small layer with $N = 4$ features and $T = 3$ classes, true class $c = 2$. Every "
                 "number below is computed by the generated code and checked against the definitions "
                 "evaluated at 50 digits (the table is in the developers' document)."),
            *WORKED_SHOWN,
            Text("**One gradient-descent step.** With learning rate $\\eta = @eta@$ the weights and "
                 "biases move against their gradients, $W \\leftarrow W - \\eta\\, \\partial L/\\partial W$ "
                 "and $b \\leftarrow b - \\eta\\, \\partial L/\\partial b$. The new logits and "
                 "probabilities:"),
            Display(r"a' = @a_step@, \qquad S' = @S_step@"),
            Text("The true class's probability rises from @S_c@ to @S_c_step@ and the loss falls from "
                 "@L@ to @L_step@: training finds a better $W$, one step at a time."),
            Text("**The same in NumPy.** The forward and backward pass of one sample, the way a "
                 "course writes it (the tests run it against the generated code on this example):"),
            Block("numpy_pass"),
        )),
        Section("7. Why the library code looks different, and further reading", "stable", (
            Text("The shifted softmax of section 2 is enough to learn from, but library code needs "
                 "more: a loss below $10^{-16}$ must not round to 0, and $\\exp$ magnifies the "
                 "rounding error of $a_j - m$. The developers' document derives the stable forms the "
                 "generated code uses and measures every function against 50-digit arithmetic."),
            Text("**Source and further reading.** " + SOURCE + "; the CS231n notes \"Linear "
                 "classification\", https://cs231n.github.io/linear-classify/, for the softmax "
                 "classifier and the initial-loss check."),
        )),
    ),
)

# --------------------------------------------------------------------------- the developer document
DEVELOPERS = Document(
    name="softmax_cross_entropy_developers",
    title="softmax-derive for developers: stable forms, options, kernels and verification",
    intro=(
        Text("The companion of the learner's document (softmax_cross_entropy), which derives the FC "
             "layer, softmax, the loss, cross entropy and the gradient. This one holds the rest of the "
             "catalogue -- the stable forms behind the generated code, the Hessian, class weights, "
             "ignored targets, label smoothing, reductions, the binary loss and the FC layer on a "
             "batch, the gradients derived automatically -- then the proved kernels with their code "
             "and the full verification table."),
        Text(PROTOCOL_TEXT),
        Block("notation"),
        Block("assumptions"),
    ),
    sections=(
        Section("Stable forms", "stable", (
            Text(STABLE_TEXT),
            Block("naive_table"),
            Proof("lse_shift"), Proof("lse_stable"), Proof("loss_stable"), Proof("log_softmax_stable"),
            Proof("softmax_stable"), Proof("true_class_complement"), Proof("true_class_complement_stable"),
            Proof("lse_weighted_factor"), Proof("lse_weighted_stable"),
        )),
        Section("Cross entropy and the worked examples, every instance", "examples", (
            Text("The learner's document states these results in prose or in a table; here each is "
                 "a checked derivation."),
            Proof("cross_entropy_is_loss"),
            Proof("example_loss_01_015_005_06_01"),
            Proof("example_loss_015_02_04_01_015"),
            Proof("example_loss_005_015_04_03_01"),
        )),
        Section("Hessian and convexity", "hessian", (
            Proof("hessian"), Proof("hessian_psd"),
        )),
        Section("Soft labels, class weights, label smoothing and reductions", "options", (
            Proof("cross_entropy_soft"), Proof("loss_gradient_weighted"), Proof("class_weight_one_hot"),
            Proof("class_weight_gradient"), Proof("label_smoothing_sums_to_one"),
            Proof("label_smoothing_gradient"), Proof("reduction_mean"),
        )),
        Section("Binary cross entropy with logits", "binary", (
            Proof("sigmoid_two_class"), Proof("bce_two_class_loss"), Proof("bce_pos_weight"),
            Proof("bce_gradient"), Proof("bce_pos_weight_gradient"), Proof("softplus_stable_positive"),
            Proof("softplus_stable_negative"),
        )),
        Section("The FC layer and the loss on a batch", "fcbatch", (
            Proof("fc_batch_grad_W"), Proof("fc_batch_grad_b"), Proof("fc_batch_grad_x"),
            Proof("fc_batch_grad_W_chunks"),
            Text("linear_cross_entropy never holds the whole logits: for class-index targets it makes "
                 "two passes over tiles of classes. Pass 1 keeps, per sample and tile, the tile's largest "
                 "logit and its sum of exponentials without the true class; the tiles combine by the cut "
                 "below (more tiles: the same cut applied to the rest), and the loss and the true "
                 "class's gradient come from those statistics. Pass 2 forms each tile's $S - Y$ from "
                 "$\\log Z$ and adds its rows of $\\partial L/\\partial W$, its entries of "
                 "$\\partial L/\\partial b$ and its share of $\\partial L/\\partial X$."),
            Proof("lse_split_classes"), Proof("loss_split_true_class"), Proof("true_class_complement_shifted"),
            Proof("fc_grad_W_class_tile"), Proof("fc_batch_grad_x_tiles"),
        )),
        Section("Gradients derived automatically", "automatic", (
            Text("The gradient results of the learner's document, derived by derive.gradient from the "
                 "loss alone (derive/softmax/automatic.py): SymPy differentiates, named rewrite rules "
                 "(derive/softmax/rules.py; each step's justification ends with its rule's name) close "
                 "the form in $S$, $y$ and the user's symbols, and the engine checks every produced "
                 "step as it checks a hand-written one. Through the FC layer the chain rule cites "
                 "$\\partial L/\\partial a$, itself derived automatically. Each is followed by the "
                 "check that its result equals the hand-written one."),
            Proof("loss_gradient_automatic"), Proof("loss_gradient_agreement"),
            Proof("loss_gradient_one_hot_automatic"), Proof("loss_gradient_one_hot_agreement"),
            Proof("jacobian_automatic"), Proof("jacobian_agreement"),
            Proof("fc_grad_W_automatic"), Proof("fc_grad_W_agreement"),
            Proof("fc_grad_b_automatic"), Proof("fc_grad_b_agreement"),
            Proof("fc_grad_x_automatic"), Proof("fc_grad_x_agreement"),
        )),
        Section("From the proofs to the code", "kernels", (
            Text("Each generated kernel is itself proved equal to the definition: its index form is the "
                 "last step of a derivation that cites the stable forms as lemmas. The kernels are "
                 "printed by SymPy's NumPy printer into numeric/_kernels.py; the loss and gradient "
                 "kernel and the helpers it calls are listed here."),
            Block("kernels"),
        )),
        Section("Verification", "verification", (
            Text("The worked example of the learner's document: every number there is computed by the "
                 "generated code (numeric.softmax, numeric.cross_entropy_with_grad, "
                 "numeric.linear_cross_entropy; the logits by NumPy's matrix product) and compared with "
                 "the definitions evaluated by mpmath at 50 digits from the same inputs. Each quantity: "
                 "its first component to all digits, and the largest error over all its components in "
                 "units in the last place (ULP)."),
            Block("worked_table"),
            Block("verification"),
            Figure("error_vs_spread",
                   "Softmax error against the spread of the logits. The max-shift loses the rounding "
                   "error of $a_j - m$, amplified by exp; the naive formula overflows past 709."),
            Figure("error_vs_margin",
                   "Loss error against the true-class margin. Past a margin of about 37 the exact loss "
                   "is below $10^{-16}$ and the max-shift returns 0 (an error of $10^{16}$ ULP and more)."),
        )),
    ),
)

DOCUMENTS = (LEARNER, DEVELOPERS)
