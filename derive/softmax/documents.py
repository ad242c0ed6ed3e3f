"""What the two generated documents say: their sections, texts, figures and worked-example
inputs, as data.

The machinery (:mod:`derive.document`, :mod:`derive.latex`, :mod:`derive.markdown`)
renders these; it decides how things look, this module decides what is said and in which
order. Texts are plain paragraphs with ``$...$`` math (the subset that both LaTeX and GitHub's Markdown render); a
:class:`Proof` names a derivation of the catalogue by key, a :class:`Figure` or
:class:`Block` names something the report stage computes (a plot, a table of numbers
from the generated code) by key.

The learner's document follows the source material in order: the FC layer, softmax, the
softmax loss, cross entropy, the gradient, one example on numbers, then why stable forms
matter. Everything a developer needs (the other derivations, the kernels, the full
verification table) is in the developer document.
"""
from __future__ import annotations

from ..document import Block, Display, Document, Figure, Proof, Section, Text

# --------------------------------------------------------------------------- shared content
#: (symbol, shape, meaning): the names every derivation prints
NOTATION = (
    ("x", r"N \times 1", "features, flattened into one column: 100 feature maps of $4 \\times 4$ "
     "give $N = 100 \\cdot 4 \\cdot 4 = 1600$"),
    ("W", r"T \times N", "weights of the fully connected layer, one row per class"),
    ("b", r"T \times 1", "biases"),
    ("a = W x + b", r"T \times 1", "logits, $a_i = \\sum_n W_{in} x_n + b_i$; any real value"),
    ("Z = \\sum_k e^{a_k}", r"1", "the normalizer (partition function)"),
    ("S = \\operatorname{softmax}(a)", r"T \times 1", "probabilities, $S_j = e^{a_j} / Z$"),
    ("y", r"T \times 1", "label: one-hot $y_j = \\delta_{jc}$, or a probability vector"),
    ("c", r"1", "the true class, $1 \\le c \\le T$"),
    ("L", r"1", "softmax loss $-\\sum_j y_j \\log S_j$"),
    ("i, j, k", "", "class indices, $1 \\dots T$; $n$ runs over the features"),
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
    Text("Each quantity against mpmath: its first component to all digits, and the largest error "
         "over all its components:"),
    Block("worked_table"),
)

#: the logits of the softmax figure: a_1 moves, the others stay (the example [1, 2, 3])
SWEEP_LOGITS = (1.0, 2.0, 3.0)

STABLE_TEXT = (
    "The definitions overflow as written: $e^{a_j}$ is infinite past $a_j \\approx 709.8$, so "
    "softmax([1000, 0]) comes out as NaN. The usual fix -- subtract the largest logit $m = a_k$, which "
    "changes nothing by the shift rule of section 2 -- avoids the overflow but still loses "
    "accuracy in two places. First, a loss below $10^{-16}$ (a confident, correct prediction) "
    "vanishes when $\\log \\sum_j e^{a_j - m}$ is formed as $\\log(1 + \\text{tiny})$; summing the "
    "terms $j \\ne k$ on their own and taking $\\operatorname{log1p}$ of that sum keeps every digit. "
    "Second, $a_j - m$ is rounded, and $e^x$ turns an absolute error of its argument into a "
    "relative error of its value: for $|a_j - m| \\approx 700$ that is hundreds of ULPs. The "
    "generated code carries the rounding error of $a_j - m$ along exactly. The table shows three "
    "inputs where the plain formulas fail; the figures show the worst error over many inputs.")

# --------------------------------------------------------------------------- the learner's document
LEARNER = Document(
    name="softmax_cross_entropy",
    title="Softmax, the softmax loss and cross entropy, derived step by step",
    intro=(
        Text("A classifier network ends in a fully connected layer that turns features into one "
             "score per class, a softmax that turns the scores into probabilities, and a loss that "
             "says how wrong those probabilities are. This document derives each piece and the "
             "gradient that training needs, with numbers at every stage."),
        Text("Every equation is a step of a derivation checked by softmax-derive's proof engine: "
             "SymPy shows each step equal to the one before it (or the stated inequality) for any "
             "number of classes $T$, and both sides are also evaluated at 40 digits on random inputs "
             "with $T = 1, 2, 3, 5, 8$, the smallest $T$ the statement needs and the next, and one "
             "random $T$ up to 12 (derivatives by numerical differentiation, not by SymPy). The "
             "reason for each step is printed beside it (in the "
             "Markdown version, in the numbered list below it)."),
        Text("The generated code, the full verification table and the derivations of the options "
             "(class weights, label smoothing, the binary loss, batches) are in the developer "
             "document, softmax_cross_entropy_developers."),
        Block("notation"),
    ),
    sections=(
        Section("1. From features to logits: the fully connected layer", "fc", (
            Text("The last convolutional layers produce feature maps; the fully connected (FC) layer "
                 "first flattens them into one column $x$ of $N$ numbers. With 100 feature maps of "
                 "$4 \\times 4$ values each, $x$ is $N \\times 1$ with $N = 100 \\cdot 4 \\cdot 4 = 1600$."),
            Text("The layer has one row of weights per class: $W$ is $T \\times N$ and $b$ is "
                 "$T \\times 1$. Its output is the vector of logits"),
            Display(r"a = W x + b, \qquad a_i = \sum_{n=1}^{N} W_{in} x_n + b_i, \qquad a \in \mathbb{R}^{T}."),
            Text("A logit can be any real number, negative or larger than one: it is a score, not a "
                 "probability. At test time nothing more is needed: the predicted class is "
                 "$\\arg\\max_j a_j$, and section 2 shows that softmax keeps that order, so it is "
                 "also $\\arg\\max_j S_j$. During training the logits go through softmax and the loss."),
        )),
        Section("2. Softmax: from scores to probabilities", "softmax", (
            Text("Softmax exponentiates each logit and divides by the sum of all of them, "
                 "$S_j = e^{a_j} / Z$ with $Z = \\sum_k e^{a_k}$. The outputs are positive, below 1, and "
                 "sum to 1, so they can be read as the probabilities of the $T$ classes:"),
            Proof("softmax_positive"),
            Proof("softmax_sums_to_one"),
            Text("Each $S_j$ is therefore in $(0, 1)$: positive, and smaller than the sum of all of "
                 "them, which is 1 (when $T \\ge 2$). Adding the same number to every logit changes "
                 "nothing, only differences between logits matter, and a larger logit always gets a "
                 "larger probability:"),
            Proof("softmax_shift"),
            Proof("softmax_ratio"),
            Proof("softmax_order"),
            Text("On numbers: the logits $a = [1, 2, 3]$ give $\\operatorname{softmax}(a) \\approx "
                 "[0.0900, 0.2447, 0.6652]$ (the source rounds to [0.09, 0.24, 0.67]). The largest "
                 "logit gets two thirds of the probability, though it is only 1 more than the next."),
            Proof("example_softmax_1"),
            Proof("example_softmax_2"),
            Proof("example_softmax_3"),
            Figure("softmax_sweep",
                   "Softmax of $a = [a_1, 2, 3]$ as $a_1$ moves and the other two logits stay fixed. "
                   "The three probabilities always sum to 1; the dots mark $a_1 = 1$, the example "
                   "$[0.0900, 0.2447, 0.6652]$. Once $a_1$ passes 3 it takes the largest share."),
        )),
        Section("3. The softmax loss", "loss", (
            Text("Training compares $S$ with the label $y$. With one true class $c$ the label is "
                 "one-hot, $y_j = 1$ for $j = c$ and 0 otherwise, and the softmax loss "
                 "$L = -\\sum_j y_j \\log S_j$ keeps a single term: minus the log of the probability "
                 "given to the true class."),
            Proof("loss_one_hot"),
            Text("Three predictions for the same 5-class sample, true class 4, show what $-\\log$ "
                 "does: the loss is small when the true class gets most of the probability, and it "
                 "grows without bound as that probability goes to 0."),
            Proof("example_loss_01_015_005_06_01"),
            Proof("example_loss_005_015_04_03_01"),
            Proof("example_loss_015_02_04_01_015"),
            Block("loss_examples"),
            Text("The second and third predictions both get the sample wrong (class 3 has the "
                 "largest probability, 0.4), but not equally: the third gives the true class only "
                 "0.1 and costs almost twice as much as the second. Confidently wrong costs most:"),
            Proof("example_order"),
            Figure("neg_log",
                   "The loss of one sample, $-\\log p_c$, against the probability $p_c$ given to the "
                   "true class, with the three examples marked. It is 0 at $p_c = 1$ and grows "
                   "without bound as $p_c \\to 0$."),
        )),
        Section("4. Cross entropy is the softmax loss", "cross_entropy", (
            Text("The cross entropy of two probability vectors $p$ and $q$ is "
                 "$H(p, q) = -\\sum_j p_j \\log q_j$. Take $p = y$, the label, and $q = S$, the softmax "
                 "output: the sum becomes the softmax loss, term by term. That is why the two names "
                 "are used for the same thing."),
            Proof("cross_entropy_is_loss"),
            Text("The label does not have to be one-hot: any probability vector $y$ works (label "
                 "smoothing and knowledge distillation use such labels). With "
                 "$\\log S_j = a_j - \\log Z$ and $\\sum_j y_j = 1$ the loss takes a form that is easy "
                 "to differentiate:"),
            Proof("loss_soft_form"),
        )),
        Section("5. The gradient: from the loss back to the logits and the weights", "gradient", (
            Text("Training needs $\\partial L / \\partial a_i$. The loss depends on $a_i$ through every "
                 "$S_j$, so the derivative of softmax comes first. It has two cases: the derivative "
                 "of an output with respect to its own logit ($i = j$), and with respect to another "
                 "logit ($i \\ne j$)."),
            Proof("jacobian_diagonal"),
            Proof("jacobian_offdiagonal"),
            Proof("jacobian"),
            Text("The chain rule through $\\log S_j$ collects both cases. The diagonal term gives "
                 "$-y_i (1 - S_i)$, every other class gives $y_j S_i$, and because the label sums to "
                 "1 almost everything cancels:"),
            Proof("loss_gradient_chain"),
            Text("The soft form of section 4 reaches the same result in two lines, and for a one-hot "
                 "label the gradient is $S$ with 1 subtracted at the true class:"),
            Proof("loss_gradient"),
            Proof("loss_gradient_one_hot"),
            Text("The FC layer passes the gradient on by the chain rule. Since "
                 "$\\partial a_j / \\partial W_{pq} = \\delta_{jp} x_q$, "
                 "$\\partial a_j / \\partial b_p = \\delta_{jp}$ and "
                 "$\\partial a_j / \\partial x_q = W_{jq}$:"),
            Proof("fc_grad_W"),
            Proof("fc_grad_b"),
            Proof("fc_grad_x"),
            Text("The same results can be derived rather than typed. Given only the loss and the "
                 "variable, derive.gradient lets SymPy differentiate and then applies named rewrite "
                 "rules, one step each -- the justification ends with the rule's name -- until the "
                 "form is closed in $S$ and $y$; every produced step is checked exactly like the "
                 "hand-written ones, and the boxed results are the same. Derived automatically, the "
                 "soft-label gradient and the gradient by the weights (the developer document has all "
                 "six, with a check that each equals its hand-written result):"),
            Proof("loss_gradient_automatic"),
            Proof("fc_grad_W_automatic"),
        )),
        Section("6. One example end to end", "worked", (
            Text("A small layer with $N = 4$ features and $T = 3$ classes, true class $c = 2$. Every "
                 "number below is computed by the generated code (numeric.softmax, "
                 "numeric.cross_entropy_with_grad, numeric.linear_cross_entropy; the logits by "
                 "NumPy's matrix product) and compared with the definitions evaluated by mpmath at 50 "
                 "digits from the same inputs; the last column is the largest difference in units in "
                 "the last place (ULP)."),
            *WORKED_SHOWN,
        )),
        Section("7. Why the code does not use the formulas as written", "stable", (
            Text(STABLE_TEXT),
            Block("naive_table"),
            Proof("lse_stable"),
            Figure("error_vs_spread",
                   "Softmax error against the spread of the logits. The max-shift loses the rounding "
                   "error of $a_j - m$, amplified by exp; the naive formula overflows past 709."),
            Figure("error_vs_margin",
                   "Loss error against the true-class margin. Past a margin of about 37 the exact loss "
                   "is below $10^{-16}$ and the max-shift returns 0 (an error of $10^{16}$ ULP and more)."),
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
             "and the full verification table. Every derivation is checked as described there."),
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
