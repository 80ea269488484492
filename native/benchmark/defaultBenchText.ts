/**
 * The text `hearth bench` measures perplexity and KL divergence on when no `--text` is given: plain,
 * simple English prose written for Hearth, long enough for a few hundred scored tokens at the default
 * 512-token context. For real comparisons, pass text like what the model will see (`--text FILE`).
 */
export const defaultBenchText = `Once upon a time, in a small town by the sea, there lived a girl named Mia. She had a red hat and a little dog called Max. Every morning, Mia and Max walked to the beach to look at the boats. The sun was warm and the sand was soft.

One day, Mia saw a big box on the sand. She was very curious. "What is in the box?" she asked Max. Max barked and wagged his tail. Mia opened the box slowly. Inside, there was a shiny blue ball. Mia smiled and threw the ball. Max ran fast and brought it back. They played all morning, and they were very happy.

Then a boy came to the beach. His name was Tom. He looked sad. "Why are you sad?" Mia asked. Tom said, "I lost my blue ball. My dad gave it to me." Mia looked at the ball in her hand. She knew it was Tom's ball. She felt a little sad, because she liked the ball too. But she knew it was the right thing to do. She gave the ball to Tom.

Tom was so happy. He said, "Thank you, Mia! You are very kind. Do you want to play with me?" Mia and Tom played with the ball together. Max ran around them and barked. The three friends laughed and played until the sun went down.

The next day, Tom came back to the beach with his mom. His mom had a basket full of cookies. "These are for you, Mia," she said, "because you were kind to Tom." Mia said thank you and shared the cookies with Tom. Max wanted a cookie too, so Mia gave him a small piece. It was the best day ever.

After that, Mia and Tom were best friends. They went to the beach every day. They built big sand castles with tall towers. They found pretty shells and put them in a jar. When it rained, they played inside Mia's house. They read books about pirates and ships, and they drew pictures of the sea.

One morning, there was a big storm. The wind was loud and the waves were high. Mia was scared. She looked out of the window and saw that a little boat was in trouble. She ran to her dad and told him. Her dad called the people who help boats at sea. They came quickly and helped the man in the little boat. He was safe.

Later, the man came to Mia's house. He wanted to say thank you. "You saw my boat and you got help," he said. "You are a brave girl." He gave Mia a small wooden boat that he made himself. Mia put the boat next to her jar of shells. Every time she looked at it, she remembered the storm and felt proud.

When summer ended, Mia had to go back to school. She was a little sad, because she liked the beach so much. But Tom was in her class, and they sat next to each other. Their teacher asked everyone to tell a story about their summer. Mia told the story of the blue ball, the cookies and the storm. Everyone clapped. The teacher said, "That is a wonderful story, Mia."

That night, Mia lay in her bed and thought about her summer. She thought about Max, about Tom, and about the sea. She knew that there would be more summers and more stories. She closed her eyes and smiled. Max curled up at the end of the bed, and soon they were both fast asleep.
`;
